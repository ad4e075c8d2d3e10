# Stage: table → results/{dataset}/train/{model}/{run}.zarr, one trajectory store per run
# (UFM and transformer; runs = d × ridge × seed of the dataset's `train` section).



# -----------------------------------------------------------------------------------------------
rule train:
    input:
        table=rules.build_table.output.table,
        code=src_files("train"),
    output:
        store=directory(TRAIN),
    log:
        "logs/{dataset}/train/{model}/{run}.log",
    benchmark:
        "logs/{dataset}/train/{model}/{run}.benchmark.tsv"
    wildcard_constraints:
        model="ufm|transformer",
        run="[^/]+",
    params:
        settings=train_params,
    threads: 1
    resources:
        gpu=train_gpu,
        runtime=train_runtime,
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train.py"
