# Delivery into a public mailbox (sieve_before of the user "vmail", see public-owner.userdb):
# postfix sends mail for the public mailbox X to vmail+X@mailbox.internal; X is filed here
# (made if missing: the built-in "postmaster" exists in the state before its first message).
require ["envelope", "subaddress", "variables", "fileinto", "mailbox"];

if envelope :detail :matches "to" "*" {
  if not string :is "${1}" "" {
    fileinto :create "${1}";
    stop;
  }
}
