# IMAPSieve (dovecot.conf): a message moved or copied out of the Junk folder is learned
# as ham by rspamd's Bayes classifier, unless it goes to Trash (deleting spam is not
# saying it is good mail).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment"];

if environment :is "imap.mailbox" "Trash" {
  stop;
}
pipe :copy "rspamd-learn" ["ham"];
