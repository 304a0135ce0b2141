"""Dead letters: where both layers quarantine what they cannot process, with the reason.

The speed-layer handler and the event-source mapping's on-failure destination, and the
raw-lake delivery's error output all write through one :class:`DeadLetterSink`: a local
directory or an S3 bucket.
"""

from dead_letters.sinks import DeadLetterSink, LocalDeadLetters, S3DeadLetters, dead_letter

__all__ = ["DeadLetterSink", "LocalDeadLetters", "S3DeadLetters", "dead_letter"]
