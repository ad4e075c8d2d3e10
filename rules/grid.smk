# Parameter grids: config `grids:` → one store per point → results/grid/{grid}.zarr → its figure.
# Points are enumerated only when the aggregate's inputs are asked for (no per-point work at parse
# time); each point's params are its own resolved parameters, so editing one axis value reruns
# exactly the points that changed (`--rerun-triggers params`), and editing the package reruns all
# of them (a digest of its sources is a param of every point).


# -----------------------------------------------------------------------------------------------
rule grid_point:
    input:
        unpack(grid_point_input),
    output:
        point=directory(GRID_POINT),
    log:
        "logs/grid/{grid}/points/{point}.log",
    wildcard_constraints:
        grid=GRIDS_PER_POINT,
    params:
        point=grid_point_params,
        code=GRID_POINT_CODE,
    threads: 1
    resources:
        mem_mb=1024,
        runtime=grid_point_runtime,
        gpu=grid_point_gpu,
    conda:
        "../envs/grid.yaml"
    script:
        "../scripts/grid_point.py"


for _grid, _batches in GRID_BATCHES.items():
    for _i, _patterns in enumerate(_batches):

        rule:
            name:
                f"grid_batch_{_grid}_{_i}"
            input:
                table=grid_batch_table(_grid, _patterns),
                svm=grid_batch_svm(_grid, _patterns),
            output:
                points=[directory(fill(GRID_POINT, grid=_grid, point=p)) for p in _patterns],
            log:
                f"logs/grid/{_grid}/batches/{_i}.log",
            params:
                points=grid_batch_points(_grid, _patterns),
                code=GRID_POINT_CODE,
            threads: 1
            resources:
                mem_mb=2048,
                runtime=30,
                gpu=grid_batch_gpu(_grid, _patterns),
            conda:
                "../envs/grid.yaml"
            script:
                "../scripts/grid_batch.py"


rule grid_aggregate:
    input:
        points=grid_point_stores,
        code=src_files("studies/grid"),
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
