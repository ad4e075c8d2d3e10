# Stage 7: one self-contained HTML page with every figure, the key numbers and the config
# → results/report.html (ntpgeom.plots.report): the overlays across datasets, each dataset's figures,
# and with a `linear` section one section per (dataset, embedding) of the linear study. `snakemake --report` gives Snakemake's own report too.



# -----------------------------------------------------------------------------------------------
rule report:
    input:
        stores=report_inputs,
        code=src_files(
            "theory/reference", "theory/svm", "theory/linear", "metrics", "plots/bundle", "plots/figio",
            "plots/figures", "plots/numbers", "plots/report", "studies/linear", "plots/semantics_figures",
        ),
        captions=report_captions(),
    output:
        html=REPORT,
    log:
        "logs/report.log",
    params:
        datasets=report_paths,
        overlays=report_overlays,
        linear=report_linear,
        toy=report_toy,
        semantics=report_semantics,
        config=config,
    localrule: True
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/report.py"
