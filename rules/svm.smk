# Stage 2: table → results/{dataset}/reference.zarr (L*, S̄ and its factors) and
# results/{dataset}/svm/{solver}.zarr (the NTP-SVM solution L^mm, its factors and certificate).



# -----------------------------------------------------------------------------------------------
rule reference:
    input:
        table=rules.build_table.output.table,
        code=src_files("theory/reference", "theory/conic", "theory/svm"),
    output:
        reference=directory(REFERENCE),
    log:
        "logs/{dataset}/reference.log",
    params:
        rank_rtol=svm_rank_rtol,
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    conda:
        "../envs/svm.yaml"
    script:
        "../scripts/reference.py"


rule svm_solve:
    input:
        table=rules.build_table.output.table,
        code=src_files("theory/reference", "theory/conic", "theory/svm"),
    output:
        svm=directory(SVM),
    log:
        "logs/{dataset}/svm/{solver}.log",
    benchmark:
        "logs/{dataset}/svm/{solver}.benchmark.tsv"
    params:
        spec=svm_params,
    threads: 1
    resources:
        mem_mb=svm_mem_mb,
        runtime=120,
        gpu=svm_gpu,
    conda:
        "../envs/svm.yaml"
    script:
        "../scripts/svm_solve.py"
