"""The platform's benchmark: `python -m deploy.bench [--quick]`; `python -m deploy.bench.report`."""
