"""Root conftest: the infrastructure fixtures (real Kafka, real PostgreSQL) for every suite."""

pytest_plugins = ["tests.fixtures.infra", "tests.fixtures.platform"]
