# Stage 6: one rule per figure, fig_<name> → results/{dataset}/figures/<name>.png and .pdf, so
# `snakemake results/grammar/figures/loss.png` redraws just that figure (and builds what it needs).
# The figures and the stores each one reads are listed in ntpgeom.figures.FIGURES; the function
# that draws figure <name> is ntpgeom.figures.<name>, its caption report/<name>.rst.


include: "figures_helpers.smk"


# -----------------------------------------------------------------------------------------------
for _figure, (_, _needs) in FIGURES.items():

    rule:
        name:
            f"fig_{_figure}"
        input:
            **{kind: FIGURE_INPUTS[kind] for kind in _needs},
            code=src_files("reference", "geometry", "figures", "figio"),
        output:
            png=report(
                f"results/{{dataset}}/figures/{_figure}.png",
                caption=f"../report/{_figure}.rst",
                category="Figures",
                subcategory="{dataset}",
            ),
            pdf=f"results/{{dataset}}/figures/{_figure}.pdf",
        log:
            f"logs/{{dataset}}/figures/{_figure}.log",
        params:
            name=_figure,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/figure.py"
