"""`carve sync` (issue 10, in progress): keeping a DynamoDB table in step with its live source.

So far: the control table that holds each mapping's lease and positions (jobs.sync.state).
"""
