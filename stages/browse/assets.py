"""The browse site's one stylesheet (site.css) and the small inline script of its listing pages.

The script is plain JavaScript with no library: every `.listing` element's children are items carrying numbers
in data-* attributes; a `form[data-for=LISTING]` next to it sorts (select `sort`, checkbox `desc`) and filters
them (inputs with `data-key` and `data-op` min / max / eq / flag), and one page of `data-per-page` items is shown
at a time. Hidden items are `display: none`, so their `loading="lazy"` images are never fetched. Without
JavaScript every item is shown, in the page's own order.
"""

from __future__ import annotations

SITE_CSS = """\
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; background: #fafafa; }
nav { margin: .8em 0; color: #666; } nav a { margin-right: .6em; }
h1 { font-size: 1.4em; margin: .4em 0; } h2 { font-size: 1.15em; margin: 1.2em 0 .4em; }
a { color: #1a56b0; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: .4em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #eee; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl.numbers { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: .4em 0; }
dl.numbers dt { color: #666; } dl.numbers dd { margin: 0; }
form.controls { background: #eef; padding: 6px 10px; border-radius: 4px; margin: .4em 0; }
form.controls label { margin-right: 1em; white-space: nowrap; } form.controls input[type=number] { width: 6em; }
.pager { margin: .4em 0; } .pager button { margin: 0 .3em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 4px; margin: 6px 0; padding: 4px 8px; }
.card.bad { border-left: 4px solid #d22; }
.strip, .frames { display: flex; flex-wrap: wrap; gap: 4px; align-items: flex-end; }
figure { margin: 0; text-align: center; font-size: 11px; color: #555; }
figure img, .frames img, .nn img { display: block; width: 48px; height: 96px; background: #ddd; }
.more { align-self: center; color: #666; padding: 0 6px; }
tr.violated td { background: #fde8e8; } .mark { color: #d22; font-weight: bold; }
.off { color: #d22; } .same { color: #2a2; }
.tracklet { background: #fff; border: 1px solid #ddd; border-radius: 4px; margin: 10px 0; padding: 4px 10px; }
.tracklet:target { outline: 3px solid #f90; }
.nn { display: inline-flex; gap: 6px; flex-wrap: wrap; } .nn figure { width: 56px; }
.query { background: #fff; border: 1px solid #ddd; border-radius: 4px; margin: 6px 0; padding: 4px 8px; }
.query .row { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; }
.query figure img { border: 3px solid transparent; }
figure.q img { border-color: #2860dc; } figure.right img { border-color: #28aa3c; }
figure.wrong img { border-color: #d22828; } figure.ignored img { border-color: #969696; }
.sep { width: 14px; } .legend { color: #555; }
figcaption .name { display: block; max-width: 64px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
svg.timeline { background: #fff; border: 1px solid #ddd; }
svg.timeline rect { fill: #4a7bd0; fill-opacity: .6; } svg.timeline rect.v { fill: #d22; fill-opacity: .8; }
svg.timeline text { font: 11px system-ui, sans-serif; fill: #444; }
"""

LISTING_JS = """\
(function () {
  function num(el, key) {
    var v = el.getAttribute('data-' + key);
    return (v === null || v === '') ? NaN : Number(v);
  }
  document.querySelectorAll('.listing').forEach(function (list) {
    var items = Array.prototype.slice.call(list.children);
    var per = Number(list.getAttribute('data-per-page')) || 50;
    var form = document.querySelector('form[data-for="' + list.id + '"]');
    var pager = document.querySelector('.pager[data-for="' + list.id + '"]');
    var page = 0, shown = items;
    function choose() {
      var out = items;
      if (form) {
        form.querySelectorAll('[data-key]').forEach(function (input) {
          var key = input.getAttribute('data-key'), op = input.getAttribute('data-op');
          if (op === 'flag') {
            if (input.checked) { out = out.filter(function (el) { return num(el, key) > 0; }); }
            return;
          }
          if (input.value === '') { return; }
          var v = Number(input.value);
          out = out.filter(function (el) {
            var x = num(el, key);
            return op === 'min' ? x >= v : op === 'max' ? x <= v : x === v;
          });
        });
        var key = form.elements.sort.value, desc = form.elements.desc.checked;
        out = out.slice().sort(function (a, b) {
          var x = num(a, key), y = num(b, key);
          if (isNaN(x)) { return isNaN(y) ? 0 : 1; }
          if (isNaN(y)) { return -1; }
          return desc ? y - x : x - y;
        });
      }
      return out;
    }
    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / per));
      page = Math.min(Math.max(page, 0), pages - 1);
      items.forEach(function (el) { el.style.display = 'none'; });
      shown.forEach(function (el, i) {
        list.appendChild(el);
        if (i >= page * per && i < (page + 1) * per) { el.style.display = ''; }
      });
      if (pager) {
        var first = shown.length ? page * per + 1 : 0, last = Math.min((page + 1) * per, shown.length);
        pager.querySelector('.info').textContent = first + '\\u2013' + last + ' of ' + shown.length +
          (shown.length < items.length ? ' (' + items.length + ' in all)' : '') + ', page ' + (page + 1) + ' of ' + pages;
      }
    }
    function update() { shown = choose(); page = 0; draw(); }
    if (form) {
      form.addEventListener('input', update);
      form.addEventListener('change', update);
      form.addEventListener('submit', function (ev) { ev.preventDefault(); update(); });
    }
    if (pager) {
      pager.querySelector('.prev').addEventListener('click', function () { page -= 1; draw(); window.scrollTo(0, list.offsetTop - 80); });
      pager.querySelector('.next').addEventListener('click', function () { page += 1; draw(); window.scrollTo(0, list.offsetTop - 80); });
    }
    update();
    if (location.hash) {
      var target = document.getElementById(location.hash.slice(1));
      var at = shown.indexOf(target);
      if (at >= 0) { page = Math.floor(at / per); draw(); target.scrollIntoView(); }
    }
  });
})();
"""
