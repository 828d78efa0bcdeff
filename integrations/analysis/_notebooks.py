"""Running the bundled notebooks with papermill, on a kernel of this environment's Python.

`run_notebook("correlations", {"tenant": "acme"}, "out/")` writes `out/correlations.ipynb` (executed,
plots inline) and the notebook writes `out/correlations.summary.json` itself (it is given
`output_dir`). The kernel `integrations-workbench` is registered into this environment
(`<sys.prefix>/share/jupyter/kernels`, not the user's home) when missing or pointing elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from integrations.errors import UsageError

KERNEL_NAME = "integrations-workbench"


def notebooks_dir() -> Path:
    """`INTEGRATIONS_NOTEBOOKS`, else `./notebooks` (run from the repository, like `make run`)."""
    return Path(os.environ.get("INTEGRATIONS_NOTEBOOKS", "notebooks"))


def available_notebooks() -> list[str]:
    return sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register a kernel running this Python (sys-prefix install) unless one already does; its name."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=name, display_name="Python (integrations workbench)", prefix=sys.prefix)
    return name


def run_notebook(name: str, parameters: dict[str, Any] | None = None, output_dir: str | Path = "notebooks/out",
                 *, kernel_name: str | None = None, progress: bool = False) -> Path:
    """Execute `notebooks/<name>.ipynb` with papermill into `output_dir`; the executed notebook's path."""
    import papermill

    source = notebooks_dir() / f"{name.removesuffix('.ipynb')}.ipynb"
    if not source.exists():
        raise UsageError(f"no notebook '{name}'", hint=f"one of: {', '.join(available_notebooks())}")
    out_dir = Path(output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    params = dict(parameters or {})
    params.setdefault("output_dir", str(out_dir))
    papermill.execute_notebook(str(source), str(target), parameters=params,
                               kernel_name=kernel_name or ensure_kernel(), cwd=str(Path.cwd()),
                               progress_bar=progress, report_mode=False)
    return target


def parse_parameter(value: str) -> Any:
    """A `-p KEY VALUE` value: JSON when it parses (numbers, lists, null), else the text itself."""
    try:
        return json.loads(value)
    except ValueError:
        return value


__all__ = ["KERNEL_NAME", "available_notebooks", "ensure_kernel", "notebooks_dir", "parse_parameter",
           "run_notebook"]
