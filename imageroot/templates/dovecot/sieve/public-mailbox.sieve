# Delivery into a public mailbox (sieve_before of the user "vmail", see public-owner.userdb):
# postfix sends mail for the public mailbox X to vmail+X@mailbox.internal; X is filed here.
require ["envelope", "subaddress", "variables", "fileinto"];

if envelope :detail :matches "to" "*" {
  if not string :is "${1}" "" {
    fileinto "${1}";
    stop;
  }
}
