"""Stand-ins for packages that framework containers ship and that cannot be installed here.

``sagemaker_containers/`` stands in for the package of that name, which the scikit-learn (and
XGBoost) containers ship and whose ``beta.framework`` module their public example scripts import
(``worker.Response``, ``encoders``, ``content_types``). The real package pins flask 1.1.1 and
werkzeug 0.15, which moto's server cannot run with, so it is not installed.

How model code reaches it: while an endpoint's code is imported and its model loaded, ``hosting``
appends this directory to ``sys.path`` when no real ``sagemaker_containers`` is installed.
Appended, not prepended, so an installed package always wins; once imported, the stand-in stays
in ``sys.modules`` (it holds no state). Its modules import each other relatively, so they are
the same code whether reached as ``sagemaker_containers`` or through this package (as mypy
checks them).
"""
