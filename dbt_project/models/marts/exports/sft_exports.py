"""Write the SFT strata as Parquet: <exports>/sft_short_cot.parquet and sft_long_cot.parquet.

One file per stratum of sft_examples (its columns, the training contract first), readable by
``datasets.load_dataset("parquet", data_files=...)``. Each file is written under a temp name and
renamed into place, so a reader never sees half a file, and an empty stratum is an empty file
with the full schema (dbt-duckdb's `external` materialization would write one all-NULL row).
The table this model builds lists the files written (names relative to the exports folder). The
folder comes from warehouse.lake (REASONLITE_EXPORTS): under `reasonlite curate` it is the build's
own folder, published with the rest of the build only if the build succeeds (warehouse/snapshots.py).
"""

import os
import uuid
from datetime import UTC, datetime

STRATA = {"short": "sft_short_cot.parquet", "long": "sft_long_cot.parquet"}


def _literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def model(dbt, session):
    dbt.config(materialized="table")
    import pyarrow as pa

    from warehouse import lake

    examples_sql = dbt.ref("sft_examples").sql_query()
    folder = lake.exports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cursor = session.cursor()  # its own connection: no pending result of dbt's in the way
    rows = {"stratum": [], "path": [], "rows": [], "bytes": [], "written_at": []}
    try:
        for stratum, name in STRATA.items():
            final = folder / name
            tmp = folder / f".tmp-{uuid.uuid4().hex}-{name}"
            try:
                cursor.execute(
                    # Ordered, so an unchanged curation writes byte-identical files: the export's
                    # fingerprint (training lineage, "already trained on this export") holds.
                    f"COPY (SELECT * FROM ({examples_sql}) WHERE stratum = {_literal(stratum)} "
                    "ORDER BY problem_id, run_id, sample_idx) "
                    f"TO {_literal(tmp)} (FORMAT parquet, COMPRESSION zstd)"
                )
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            count = cursor.execute(f"SELECT count(*) FROM read_parquet({_literal(final)})").fetchone()[0]
            rows["stratum"].append(stratum)
            rows["path"].append(name)
            rows["rows"].append(count)
            rows["bytes"].append(final.stat().st_size)
            rows["written_at"].append(datetime.now(UTC))
    finally:
        cursor.close()
    return pa.table(rows)
