"""Rule linear_reference: table → results/{dataset}/linear/{embedding}/reference.zarr."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from ntpgeom.data.table import load  # noqa: E402
from ntpgeom.store import open_store, script_main, write_store  # noqa: E402
from ntpgeom.studies.linear import LinearConfig, linear_reference_for  # noqa: E402


def main() -> None:
    linear = LinearConfig.from_dict(snakemake.params.spec["linear"])
    table = load(snakemake.input.table)
    # Source random reads no store: its input function gives [], not a path.
    store = snakemake.input.get("store") or None
    ds = linear_reference_for(table, embedding=linear.embeddings[snakemake.wildcards.embedding],
                              linear=linear,
                              store=open_store(store) if isinstance(store, str) else None,
                              config={"linear": linear.to_dict()})
    write_store(ds, snakemake.output.reference)


script_main(main)
