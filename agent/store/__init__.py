"""The state on disk: the SQLite ledger, meeting rounds, the state lock and the status queries."""
