# Stage 7: one self-contained HTML page with every figure, the key numbers and the config
# → results/report.html (ntpgeom.report). `snakemake --report` gives Snakemake's own report too.


include: "report_helpers.smk"


# -----------------------------------------------------------------------------------------------
rule report:
    input:
        stores=report_inputs,
        code=src_files("reference", "geometry", "figio", "report"),
        captions=expand("{dir}/{name}.rst", dir=CAPTIONS, name=list(FIGURES)),
    output:
        html="results/report.html",
    log:
        "logs/report.log",
    params:
        datasets=report_paths,
        config=config,
    localrule: True
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/report.py"
