"""Background job bookkeeping: each run of a worker job is recorded."""
