"""Write the API reference's module pages from each documented module's ``__all__``.

Each module page (``docs/api/modules/<page>.rst``, not committed) is written here at every
build: the module's docstring and one autosummary table per group of names, so that a public
name added to ``__all__`` appears with its own page and no edit of the docs.
"""
import importlib
import inspect
import types

# page -> the module it documents, and what the page says before the lists
MODULES = {
    "fastcalc": ("fastcalc", "The top-level package re-exports the whole library; the "
                 "submodules :doc:`fastcalc.models <models>`, :doc:`fastcalc.dask <dask>` and "
                 ":doc:`fastcalc.nist <nist>` have their own pages."),
    "models": ("fastcalc.models", ""),
    "dask": ("fastcalc.dask", ""),
    "nist": ("fastcalc.nist", ""),
}

# Headings of the top-level names, by the module that defines them (first prefix that matches);
# names from a module not listed here go under "Other".
TOPICS = [
    ("fastcalc.differentiate", "Derivatives"),
    ("fastcalc.sparse", "Sparse derivatives and operators"),
    ("fastcalc.roots", "Roots"),
    ("fastcalc.optimize", "Optimization"),
    ("fastcalc.fitting", "Fitting"),
    ("fastcalc.propagate", "Error propagation"),
    ("fastcalc._parallel", "Threads"),
    ("fastcalc._status", "Statuses and errors"),
]


# Headings of the other modules, by kind; a module may name its objects (instances) better.
KINDS = ["Functions", "Classes", "Objects"]
OBJECTS_TITLE = {"fastcalc.models": "Built-in models"}


def _kind(value):
    if inspect.isclass(value):
        return "Classes"
    if inspect.isroutine(value):
        return "Functions"
    return "Objects"


def _topic(value):
    module = getattr(value, "__module__", None) or ""
    for prefix, title in TOPICS:
        if module == prefix or module.startswith(prefix + "."):
            return title
    return "Other"


def groups(module_name):
    """Return ``[(heading, [name, ...]), ...]`` for the public names of ``module_name``.

    Submodules are left out (each has its own page); the top-level package is grouped by
    topic, the others by kind (functions, classes, objects).
    """
    module = importlib.import_module(module_name)
    public = [name for name in module.__all__
              if not isinstance(getattr(module, name), types.ModuleType)]
    top = module_name == "fastcalc"
    order = [title for _, title in TOPICS] + ["Other"] if top else KINDS
    key = _topic if top else _kind
    found = {}
    for name in public:
        found.setdefault(key(getattr(module, name)), []).append(name)
    titles = {"Objects": OBJECTS_TITLE.get(module_name, "Objects")}
    return [(titles.get(heading, heading), sorted(found[heading], key=str.lower))
            for heading in order if heading in found]


def render(module_name, intro=""):
    title = f"``{module_name}``"
    lines = [".. This page is written by docs/_ext/api_lists.py at every build: do not edit.", "",
             title, "=" * len(title), "", f".. automodule:: {module_name}", "   :no-members:",
             "", intro, "", f".. currentmodule:: {module_name}", ""]
    for heading, names in groups(module_name):
        lines += [heading, "-" * len(heading), "", ".. autosummary::",
                  "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in names] + [""]
    return "\n".join(lines)


def write_api_pages(folder):
    """Write ``folder/<page>.rst`` for every page of :data:`MODULES` (only when it changed)."""
    folder.mkdir(exist_ok=True)
    for page, (module_name, intro) in MODULES.items():
        path = folder / f"{page}.rst"
        text = render(module_name, intro)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


# Names whose object cannot carry a docstring of its own: a str, and a Cython ``cpdef enum``.
DOCSTRINGS = {
    "fastcalc.__version__": "The version of the installed fastcalc package.",
    "fastcalc.models.ModelId": ("Identifier of a built-in model in the compiled kernels "
                                "(``Model.model_id``); its members name the models."),
}


def _shows_builtin_type_doc(obj, lines):
    """True when ``lines`` are the docstring of the built-in type of ``obj`` (str, tuple, ...)."""
    type_doc = type(obj).__doc__ if type(obj).__module__ == "builtins" else None
    return bool(type_doc and lines) and lines[0].strip() == type_doc.strip().splitlines()[0]


def own_docstrings(app, what, name, obj, options, lines):
    """autodoc-process-docstring: the texts of :data:`DOCSTRINGS`; no docstring of ``str``."""
    if name in DOCSTRINGS:
        lines[:] = [DOCSTRINGS[name]]
    elif what == "data" and _shows_builtin_type_doc(obj, lines):
        lines[:] = []


def setup(app):
    app.connect("autodoc-process-docstring", own_docstrings)
    return {"parallel_read_safe": True}
