"""One contract suite for every implementation of agent.mail.port.MailboxPort (see conftest.py)."""
