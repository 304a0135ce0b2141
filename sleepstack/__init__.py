"""sleepstack's composition root: settings, the local stack and the CLI."""
