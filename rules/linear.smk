# Stage 8, the linear model (NeurIPS 2402.18551): fixed context embeddings H̄, W trained alone.
# table (+ a training or svm store) → results/{dataset}/linear/{embedding}/reference.zarr (H̄, W*,
# W^mm, compatibility, separability, d > m) → .../train/{optimizer}.zarr (W-only runs with the
# NeurIPS Fig. 3 metrics) → results/{dataset}/figures/linear/{embedding}/<name>.png.



wildcard_constraints:
    embedding="[A-Za-z0-9-]+",
    optimizer="[A-Za-z0-9-]+",


# -----------------------------------------------------------------------------------------------
rule linear_reference:
    input:
        table=rules.build_table.output.table,
        store=linear_store,
        code=src_files("theory/reference", "theory/linear", "theory/conic", "metrics", "studies/linear"),
    output:
        reference=directory(LINEAR_REFERENCE),
    log:
        "logs/{dataset}/linear/{embedding}/reference.log",
    benchmark:
        "logs/{dataset}/linear/{embedding}/reference.benchmark.tsv"
    params:
        spec=linear_reference_params,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=30,
    conda:
        "../envs/svm.yaml"
    script:
        "../scripts/linear_reference.py"


rule linear_train:
    input:
        table=rules.build_table.output.table,
        reference=rules.linear_reference.output.reference,
        code=src_files("theory/reference", "theory/linear", "theory/conic", "metrics", "studies/linear", "train"),
    output:
        train=directory(LINEAR_TRAIN),
    log:
        "logs/{dataset}/linear/{embedding}/train/{optimizer}.log",
    benchmark:
        "logs/{dataset}/linear/{embedding}/train/{optimizer}.benchmark.tsv"
    params:
        spec=linear_train_params,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=60,
    conda:
        "../envs/svm.yaml"
    script:
        "../scripts/linear_train.py"


for _figure in LINEAR_FIGURES:

    rule:
        name:
            f"fig_linear_{_figure}"
        input:
            reference=rules.linear_reference.output.reference,
            train=linear_train_stores,
            code=src_files("plots/style", "plots/bundle", "plots/figio", "plots/linear_figures"),
        output:
            png=report(
                fill(LINEAR_FIGURE, name=_figure, ext="png"),
                caption=f"../report/linear_{_figure}.rst",
                category="Linear model",
                subcategory="{dataset} / {embedding}",
            ),
            pdf=fill(LINEAR_FIGURE, name=_figure, ext="pdf"),
        log:
            f"logs/{{dataset}}/figures/linear/{{embedding}}/{_figure}.log",
        params:
            name=_figure,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/linear_figure.py"


rule fig_linear_toy:
    input:
        code=src_files("theory/reference", "theory/linear", "theory/conic", "metrics", "studies/linear", "plots/style", "plots/bundle", "plots/figio", "plots/linear_figures"),
    output:
        png=report(
            fill(LINEAR_TOY, ext="png"),
            caption="../report/linear_toy.rst",
            category="Linear model",
            subcategory="2-D toy",
        ),
        pdf=fill(LINEAR_TOY, ext="pdf"),
    log:
        "logs/figures/linear_toy.log",
    params:
        seed=linear_toy_seed,
    localrule: True
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/linear_toy.py"
