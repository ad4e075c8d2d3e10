# Helpers of the grid stage (rules/grid.smk), apart from its rules so that `snakemake --lint`
# finds no functions among rules.
import hashlib

from ntpgeom.errors import UserError
from ntpgeom.studies.grid import GridSpec, parse_grid


def _parse_grids():
    """Every `grids:` entry as a GridSpec; a bad entry is one line naming the setting."""
    grids = {}
    for name, entry in (config.get("grids") or {}).items():
        try:
            grids[name] = parse_grid(name, entry or {}, datasets=DATASETS)
        except UserError as err:
            _refuse(err)
    if grids:
        # set_default=False: the schema documents the point defaults, GridSpec applies them.
        try:
            _config.validate({"grids": config["grids"]}, SCHEMAS / "grid.schema.yaml",
                             set_default=False)
        except UserError as err:
            _refuse(err)
    return grids


GRIDS = _parse_grids()


# Without this, `results/grid/{grid}.zarr` would also match a point store (grid = "g/points/...").
wildcard_constraints:
    grid="|".join(GRIDS) or "none",


# Grids with `batch > 1` train equal-shape points together (on a GPU: one vmap-ed step, one CUDA
# graph): one rule per batch, named grid_batch_<grid>_<i>, whose outputs are its points' stores.
# Listing the batches walks every point at parse time, so only grids that ask for it pay.
GRID_BATCHES = {name: spec.batches() for name, spec in GRIDS.items() if spec.batch > 1}
# grid_point serves the other grids (one job per point, exact reruns).
GRIDS_PER_POINT = "|".join(n for n in GRIDS if n not in GRID_BATCHES) or "none"


def _code_digest(paths):
    """sha256 over the files' contents: one param that changes when any of them does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


# The package sources a point runs (every point trains through the `train` package's engine), as one
# digest param rather than ~10 inputs per point: Snakemake matches every input of every job against
# every rule's outputs, which made a 1,000-point dry-run 2x slower. Editing any of them changes the
# digest, and the `params` rerun trigger reruns every point.
GRID_POINT_CODE = _code_digest(src_files("studies/grid", "metrics", "theory/reference", "train"))


def grid_targets():
    """Each grid's aggregate and figure."""
    return expand(["results/grid/{grid}.zarr", "results/grid/figures/{grid}.png"], grid=GRIDS)


def grid_point_params(wildcards):
    """The point's full parameters (defaults ← grid's fixed ← the point's axis values)."""
    return GRIDS[wildcards.grid].point(wildcards.point)


def grid_point_input(wildcards):
    """The point's table (from the table stage) and, unless L^mm is in closed form, its svm store."""
    point = grid_point_params(wildcards)
    inputs = {"table": f"results/{point['dataset']}/table.zarr"}
    if point["solver"] != "closed_form":
        inputs["svm"] = f"results/{point['dataset']}/svm/{point['solver']}.zarr"
    return inputs


def grid_point_runtime(wildcards, attempt):
    """Minutes: ~1 s per 1,000 small UFM steps on one core, generously rounded; doubled per retry."""
    return (5 + grid_point_params(wildcards)["epochs"] // 2000) * attempt


def grid_batch_points(grid, patterns):
    """The full parameters of a batch's points, in order."""
    return [GRIDS[grid].point(p) for p in patterns]


def grid_batch_table(grid, patterns):
    return f"results/{GRIDS[grid].point(patterns[0])['dataset']}/table.zarr"


def grid_batch_svm(grid, patterns):
    point = GRIDS[grid].point(patterns[0])
    if point["solver"] == "closed_form":
        return []
    return [f"results/{point['dataset']}/svm/{point['solver']}.zarr"]


def grid_batch_gpu(grid, patterns):
    """A batch asks for a GPU when its grid says so (device: cuda) or it trains transformers."""
    point = GRIDS[grid].point(patterns[0])
    return int(point["model"] == "transformer" or GRIDS[grid].batch > 1 and GRID_BATCH_GPU)


# Batched grids are meant for a GPU; `--config grid_batch_gpu=false` runs them on CPU cores.
GRID_BATCH_GPU = bool(config.get("grid_batch_gpu", True))


def grid_point_gpu(wildcards):
    """Only transformer points ask for a GPU; UFM points are tiny and run on a CPU core."""
    return int(grid_point_params(wildcards)["model"] == "transformer")


def grid_point_stores(wildcards):
    """Every point store of the grid, in C order over its axes (the aggregate's inputs)."""
    spec = GRIDS[wildcards.grid]
    return [f"results/grid/{spec.name}/points/{p}.zarr" for p in spec.patterns()]


def grid_definition(wildcards):
    return GRIDS[wildcards.grid].definition()


def grid_mem_mb(wildcards, attempt):
    """The aggregate holds every point in memory: ~50 kB each for the default tables."""
    return (1024 + GRIDS[wildcards.grid].size // 10) * attempt
