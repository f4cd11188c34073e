"""One reconcile pass: intake, delivery, history, digests and meetings, and the event stream."""
