# ntpgeom: corpus → distinct-context tables → L*, S̄, L^mm → training → geometry → figures.
# Run: snakemake --cores all            (default config.yaml)
#      snakemake --cores all --configfile config/tinystories.yaml


configfile: "config.yaml"


# helpers, config validation, target lists
include: "rules/common.smk"
# one file per stage
include: "rules/tables.smk"
include: "rules/svm.smk"
include: "rules/train.smk"
include: "rules/geometry.smk"
include: "rules/figures.smk"
include: "rules/report.smk"
include: "rules/linear.smk"
include: "rules/grid.smk"
include: "rules/semantics.smk"


rule all:
    input:
        all_targets(),
    default_target: True
