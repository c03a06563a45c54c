"""``sagemaker_containers.beta``: only ``framework``, what model scripts import."""
