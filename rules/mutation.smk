# Mutation testing of the paper's path (jointwsss bench mutation; docs/mutation.md). Target: mutation.
# It mutates a snapshot of the committed tree (git archive of HEAD), so it runs on the checkout that holds this
# Snakefile; a module's run takes minutes, all of them about an hour on 2 cores. Not part of `all`.


rule mutation:
    output:
        json="bench/mutation.json",
        table="bench/mutation.md",
    log:
        LOGS / "bench/mutation.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        repo=workflow.basedir,
    shell:
        "jointwsss bench mutation --repo {params.repo} --rev HEAD --out {output.json} --table {output.table} "
        "> {log} 2>&1"
