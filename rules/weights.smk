# ImageNet weights: model.image.weights may name PSA's MXNet file (ilsvrc-cls_rna-a1_cls1000_ep-0001.params);
# it is converted once to a PyTorch state dict in the cache, and again only when the file changes.

if IMPORTED_IMAGE_WEIGHTS:

    rule import_imagenet_weights:
        input:
            config["model"]["image"]["weights"],
        output:
            IMPORTED_IMAGE_WEIGHTS,
        log:
            LOGS / "weights/import_imagenet_weights.log",
        conda:
            "../envs/jointwsss.yaml"
        shell:
            "jointwsss weights import {input:q} {output:q} > {log} 2>&1"
