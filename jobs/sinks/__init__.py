"""Where items go: the `Sink` protocol (jobs.sinks.base) and its implementations, found by name
in jobs.sinks.registry: carve's rate-controlled BatchWriteItem writer and AWS Glue's DynamoDB
connector."""
