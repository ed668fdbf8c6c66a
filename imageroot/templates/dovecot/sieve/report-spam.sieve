# IMAPSieve (dovecot.conf): a message moved or copied into the Junk folder is learned
# as spam by rspamd's Bayes classifier.
require ["vnd.dovecot.pipe", "copy"];

pipe :copy "rspamd-learn" ["spam"];
