"""The doors: every way a message comes in besides the Outbox folder, each ending in the same intake.

A door only makes the message durable and visible (in the Mentor Outbox) and answers "accepted" after that;
pacing, digests, exactly-once and Sent filing never know which door it came through.
"""
