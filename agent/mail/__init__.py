"""Mail adapters: IMAP (imapclient), SMTP (aiosmtplib), credentials and connection errors."""
