from services.export.storage import Base
from shared.db.migrations import run_migrations

run_migrations(Base.metadata)
