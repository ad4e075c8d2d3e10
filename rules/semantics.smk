# Stage: how concepts emerge (docs: semantics.md). A training run + S̄ + L^mm → the learning order
# of the targets' modes and orthant clusters of words and contexts,
# results/{dataset}/semantics/{model}/{run}.zarr, and its figures
# results/{dataset}/figures/semantics/{model}/{run}/<name>.png. Only with a `semantics` section.


# -----------------------------------------------------------------------------------------------
rule semantics:
    input:
        train=rules.train.output.store,
        table=rules.build_table.output.table,
        reference=rules.reference.output.reference,
        svm=semantics_svm,
        code=src_files("theory/reference", "metrics"),
    output:
        semantics=directory(SEMANTICS),
    log:
        "logs/{dataset}/semantics/{model}/{run}.log",
    benchmark:
        "logs/{dataset}/semantics/{model}/{run}.benchmark.tsv"
    wildcard_constraints:
        model="ufm|transformer",
        run="[^/]+",
    params:
        options=semantics_params,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=30,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/semantics.py"


for _figure in SEMANTICS_FIGURES:

    rule:
        name:
            f"fig_semantics_{_figure}"
        input:
            store=rules.semantics.output.semantics,
            code=src_files("plots/bundle", "plots/style", "plots/figio", "plots/semantics_figures"),
        output:
            png=report(
                fill(SEMANTICS_FIGURE, name=_figure, ext="png"),
                caption=f"../report/semantics_{_figure}.rst",
                category="Semantics",
                subcategory="{dataset} / {model} / {run}",
            ),
            pdf=fill(SEMANTICS_FIGURE, name=_figure, ext="pdf"),
        log:
            f"logs/{{dataset}}/figures/semantics/{{model}}/{{run}}/{_figure}.log",
        wildcard_constraints:
            model="ufm|transformer",
            run="[^/]+",
        params:
            name=_figure,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/semantics_figure.py"
