# Parameter grids: config `grids:` → one store per batch of points (a batch of one by default) →
# results/grid/{grid}.zarr → its figure. Points are enumerated only when the aggregate's inputs are
# asked for; each batch's params are its points' resolved parameters, so editing one axis value
# reruns exactly the batches that changed (`--rerun-triggers params`), and editing the package
# reruns all of them (a digest of its sources is a param of every batch).


# -----------------------------------------------------------------------------------------------
rule grid_batch:
    input:
        unpack(grid_batch_input),
    output:
        batch=directory(GRID_BATCH),
    log:
        "logs/grid/{grid}/batches/{batch}.log",
    params:
        patterns=grid_batch_patterns,
        points=grid_batch_points,
        code=GRID_POINT_CODE,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=grid_batch_runtime,
        gpu=grid_batch_gpu,
    conda:
        "../envs/grid.yaml"
    script:
        "../scripts/grid_batch.py"


rule grid_aggregate:
    input:
        batches=grid_batch_stores,
        code=src_files("studies/grid", "studies/grid_points"),
    output:
        grid=directory(GRID),
    log:
        "logs/grid/{grid}.log",
    params:
        grid=grid_definition,
    threads: 1
    resources:
        mem_mb=grid_mem_mb,
        runtime=10,
    conda:
        "../envs/grid.yaml"
    script:
        "../scripts/grid_aggregate.py"


rule grid_figure:
    input:
        grid=rules.grid_aggregate.output.grid,
        code=src_files("studies/grid", "plots/grid_figures"),
    output:
        png=GRID_FIGURE,
    log:
        "logs/grid/figures/{grid}.log",
    params:
        grid=grid_definition,
    localrule: True
    conda:
        "../envs/grid.yaml"
    script:
        "../scripts/grid_figure.py"
