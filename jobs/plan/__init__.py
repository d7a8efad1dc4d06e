"""`carve plan`: what a run of a mapping will write, cost and take, before anything is written.

The plan reads a sample of the source (whole items, see jobs.plan.sample; `--full` reads
everything), builds the items with the same transforms as a run, measures them
(jobs.plan.figures) and prices the load (jobs.plan.costs). It writes nothing to DynamoDB; it
only asks DescribeTable for the target's capacity, and goes on without it when it cannot.
Its report.json (`mode: plan`) and report.html go to the report folder like a run's.
"""
