#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: a login role and a database per service,
# each owned by its role and closed to everyone else, so no service can read another's data.
# "nordic" stands for the Nordic research database that export's SQL sink writes to.
set -euo pipefail

for name in intake validation stats export nordic; do
    password_var="${name^^}_DB_PASSWORD"
    password="${!password_var:?$password_var is not set}"
    # psql variables (:"name", :'password') quote the values: no SQL is built by string pasting.
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v name="$name" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
