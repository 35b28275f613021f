"""`auxreid browse`: a static web site for inspecting every clustering round of a run.

- `collect`: reads the run's artifacts (clusters, features, aux, eval) into what the pages show;
- `stats`: the per-cluster numbers and nearest neighbours, vectorised with numpy;
- `thumbs`: one small JPEG per frame shown, shared by every page;
- `render`, `assets`: the HTML, its stylesheet and its small inline script;
- `site`: `run_browse`, which builds the site in a temporary folder and renames it into place.
"""

from stages.browse.site import BrowseSite, run_browse

__all__ = ["BrowseSite", "run_browse"]
