"""The registry of subjects, devices and assignments: one interface (:mod:`registry.store`),
DynamoDB on AWS (:mod:`registry.dynamodb`), SQLite locally (:mod:`local.registry`)."""
