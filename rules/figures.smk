# Stage 6: one rule per figure, fig_<name> → results/{dataset}/figures/<name>.png and .pdf, so
# `snakemake results/grammar/figures/loss.png` redraws just that figure (and builds what it needs).
# The figures and the stores each one reads are listed in ntpgeom.plots.figures.FIGURES; the function
# that draws figure <name> is ntpgeom.plots.figures.<name>, its caption report/<name>.rst.
# The figures the paper overlays across datasets (ntpgeom.plots.figures.OVERLAYS: F1, F2, F3, F7) are
# also drawn with every run of every dataset, fig_overlay_<name> → results/figures/<name>.png.



# -----------------------------------------------------------------------------------------------
for _figure, (_, _needs) in FIGURES.items():

    rule:
        name:
            f"fig_{_figure}"
        input:
            **{kind: FIGURE_INPUTS[kind] for kind in _needs},
            code=src_files("theory/reference", "metrics", "plots/bundle", "plots/style", "plots/figures",
                           "plots/representation_figures", "plots/figio"),
        output:
            png=report(
                fill(FIGURE, name=_figure, ext="png"),
                caption=f"../report/{_figure}.rst",
                category="Figures",
                subcategory="{dataset}",
            ),
            pdf=fill(FIGURE, name=_figure, ext="pdf"),
        log:
            f"logs/{{dataset}}/figures/{_figure}.log",
        params:
            name=_figure,
            families=figure_families,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/figure.py"


for _figure in OVERLAYS:

    rule:
        name:
            f"fig_overlay_{_figure}"
        input:
            **{kind: OVERLAY_INPUTS[kind] for kind in FIGURES[_figure][1]},
            code=src_files("theory/reference", "metrics", "plots/bundle", "plots/style", "plots/figures",
                           "plots/representation_figures", "plots/figio"),
        output:
            png=report(
                fill(OVERLAY, name=_figure, ext="png"),
                caption=f"../report/{_figure}.rst",
                category="Figures",
                subcategory="all datasets",
            ),
            pdf=fill(OVERLAY, name=_figure, ext="pdf"),
        log:
            f"logs/figures/{_figure}.log",
        params:
            name=_figure,
            families=figure_families,
        localrule: True
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/figure_overlay.py"
