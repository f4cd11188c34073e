"""The built-in demo week and its embedded IMAP and SMTP servers."""
