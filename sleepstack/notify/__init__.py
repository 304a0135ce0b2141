"""Alert delivery (issue 28): routes file, channels (e-mail, signed webhooks) and the notifier engine."""
