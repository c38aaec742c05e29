"""HTML of the listening page (Jinja2 templates, autoescaped; CSS and a little JS inline,
nothing fetched from elsewhere)."""

from __future__ import annotations

BASE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}soundsim listen{% endblock %}</title>
<style>
  :root { --ink: #1d2430; --muted: #5d6777; --line: #d9dee6; --bg: #f6f7f9; --rel: #2e7d32; --accent: #1f5f8b; }
  * { box-sizing: border-box; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         margin: 0; background: var(--bg); }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 10px 20px; display: flex;
           align-items: baseline; gap: 16px; }
  header h1 { font-size: 18px; margin: 0; }
  header .sub { color: var(--muted); }
  main { padding: 14px 20px 40px; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; margin-bottom: 12px; }
  form.controls { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: flex-end; }
  form.controls label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
  form.controls select, form.controls input[type=number] { font-size: 13px; padding: 3px 4px; max-width: 380px; }
  form.controls .systems { display: flex; flex-wrap: wrap; gap: 8px; }
  form.controls .systems select { max-width: none; }
  form.controls label.inline { flex-direction: row; align-items: center; gap: 4px; font-size: 13px; color: var(--ink); }
  button, .button { font-size: 13px; padding: 5px 12px; border: 1px solid var(--accent); background: var(--accent);
           color: #fff; border-radius: 4px; cursor: pointer; text-decoration: none; display: inline-block; }
  .button.secondary, button.secondary { background: #fff; color: var(--accent); }
  .query { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 18px; }
  .query .name { font-weight: 600; font-size: 16px; }
  .muted { color: var(--muted); }
  .tag { display: inline-block; background: #eef1f5; border-radius: 3px; padding: 0 5px; margin: 1px 2px 1px 0;
         font-size: 12px; }
  .tag.hit { background: #dcefdc; color: var(--rel); font-weight: 600; }
  .grid { display: grid; gap: 12px; }
  .col { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; min-width: 0; }
  .col h2 { font-size: 14px; margin: 0 0 2px; overflow-wrap: anywhere; }
  .col .meta { font-size: 12px; color: var(--muted); margin-bottom: 6px; min-height: 4.3em; }
  .col .ap { font-weight: 600; color: var(--ink); }
  ol.results { list-style: none; margin: 0; padding: 0; }
  ol.results li { display: grid; grid-template-columns: 22px 28px 1fr auto; gap: 4px; align-items: center;
                  padding: 3px 0; border-top: 1px solid #eef0f3; }
  ol.results li.relevant { background: linear-gradient(90deg, #e8f5e9 0, #fff 70%); }
  ol.results .rank { color: var(--muted); text-align: right; font-variant-numeric: tabular-nums; }
  ol.results .fname { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
  ol.results .labels { grid-column: 3 / 5; line-height: 1.2; }
  ol.results .score { font-variant-numeric: tabular-nums; font-size: 12px; color: var(--muted); }
  .mark { color: var(--rel); font-weight: 700; }
  button.play { width: 26px; height: 22px; padding: 0; font-size: 11px; line-height: 1; background: #fff;
                color: var(--accent); }
  button.play.playing { background: var(--accent); color: #fff; }
  .rate { margin-top: 8px; border-top: 1px solid var(--line); padding-top: 6px; font-size: 13px; }
  .rate .stars { display: flex; gap: 6px; flex-wrap: wrap; }
  .rate label { white-space: nowrap; }
  .submit { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: center; margin-top: 12px; }
  .submit input[type=text] { padding: 4px; font-size: 13px; }
  .notice { border-left: 4px solid var(--rel); }
  .error { border-left: 4px solid #b3261e; }
  code, pre { background: #eef1f5; padding: 1px 4px; border-radius: 3px; }
  pre { padding: 8px; overflow-x: auto; }
</style>
</head>
<body>
<header><h1>soundsim listen</h1><span class="sub">{% block sub %}{% endblock %}</span></header>
<main>
{% block main %}{% endblock %}
</main>
{% block script %}{% endblock %}
</body>
</html>
"""

MESSAGE = r"""{% extends "base.html" %}
{% block title %}{{ title }} - soundsim listen{% endblock %}
{% block sub %}{{ collection }}{% endblock %}
{% block main %}
<div class="panel error" id="message">
  <h2>{{ title }}</h2>
  <p>{{ message }}</p>
  {% if hint %}<p>Run, in the project folder:</p><pre id="hint">{{ hint }}</pre>{% endif %}
  {% if back %}<p><a href="{{ back }}">Back to the listening page</a></p>{% endif %}
</div>
{% endblock %}
"""

PAGE = r"""{% extends "base.html" %}
{% block sub %}collection <b>{{ collection }}</b> &middot; {{ n_clips }} clips, {{ classes|length }} classes,
{{ systems|length }} evaluated settings{% endblock %}
{% block main %}
<form class="panel controls" method="get" action="{{ url_for('page') }}" id="controls">
  <label>Class
    <select name="class" id="class">
      <option value="">(choose a class)</option>
      {% for c, n in classes %}<option value="{{ c }}"{% if c == cls %} selected{% endif %}>{{ c }} ({{ n }})</option>{% endfor %}
    </select>
  </label>
  <label>Query clip
    <select name="query" id="query-select">
      <option value="">random draw (seed)</option>
      {% for f in class_clips %}<option value="{{ f }}"{% if f == query and query_chosen %} selected{% endif %}>{{ f }}</option>{% endfor %}
    </select>
  </label>
  <label>Seed <input type="number" name="seed" id="seed" min="0" max="{{ max_seed }}" value="{{ seed if seed is not none else '' }}" style="width: 7em"></label>
  <div class="systems">
    {% for i in range(max_systems) %}
    <label>System {{ i + 1 }}
      <select name="systems" id="system-{{ i }}">
        <option value="">(none)</option>
        {% for s in systems %}<option value="{{ s.id }}"{% if chosen_ids|length > i and chosen_ids[i] == s.id %} selected{% endif %}>{{ s.label }}{% if s.id in best_ids %} &middot; best{% endif %}</option>{% endfor %}
      </select>
    </label>
    {% endfor %}
  </div>
  <label class="inline"><input type="checkbox" name="blind" value="1" id="blind"{% if blind %} checked{% endif %}> blind</label>
  <button type="submit" id="show">Show</button>
</form>

{% if notice %}<div class="panel notice" id="notice">{{ notice }}</div>{% endif %}

{% if not cls %}
<div class="panel" id="intro">
  <p>Choose a <b>class</b>: a query clip of that class is drawn at random (the <b>seed</b> makes the draw
  repeatable; or pick the clip). Up to {{ max_systems }} systems (model / variation / aggregation, PCA,
  search) show their top {{ top_n }} results side by side; by default each model's best setting
  (<code>tables/best_settings.csv</code>). Listen, then rate how semantically similar each list is to the
  query (1 = not at all, 5 = all results sound like the query's class). In <b>blind</b> mode the lists are
  shuffled and names, scores, labels and AP are hidden until you have rated.</p>
  <p class="muted">The page state is in the address: copy it to share exactly this comparison.</p>
</div>
{% else %}
<div class="panel query" id="query-panel">
  <span class="muted">Query ({{ cls }}{% if not query_chosen %}, drawn with seed {{ seed }}{% endif %}):</span>
  <span class="name" id="query-name">{{ query }}</span>
  <span>{% for l in query_labels %}<span class="tag{% if l == cls %} hit{% endif %}">{{ l }}</span>{% endfor %}</span>
  <span class="muted">{{ "%.1f"|format(query_duration) }} s</span>
  <audio controls preload="metadata" src="{{ url_for('audio', fname=query) }}" id="query-audio"></audio>
  {% if not query_chosen %}<a class="button secondary" id="redraw" href="{{ redraw_url }}">Draw another query</a>{% endif %}
</div>

<form method="post" action="{{ url_for('rate') }}" id="rating-form">
  <input type="hidden" name="collection" value="{{ collection }}">
  <input type="hidden" name="class" value="{{ cls }}">
  <input type="hidden" name="query" value="{{ query }}">
  <input type="hidden" name="seed" value="{{ seed if seed is not none else '' }}">
  <input type="hidden" name="blind" value="{{ 1 if blind else 0 }}">
  <input type="hidden" name="query_chosen" value="{{ 1 if query_chosen else 0 }}">
  {% for sid in chosen_ids %}<input type="hidden" name="systems" value="{{ sid }}">{% endfor %}
  <div class="grid" style="grid-template-columns: repeat({{ columns|length }}, minmax(0, 1fr));">
  {% for c in columns %}
    {% set pos = loop.index0 %}
    <section class="col" id="col-{{ pos }}" data-system="{{ c.system.id if reveal else '' }}">
      {% if reveal %}
        <h2 class="system-name">{% if blind %}System {{ "ABCD"[pos] }}: {% endif %}{{ c.system.model }} / {{ c.system.variation }}</h2>
        <div class="meta">{{ c.system.aggregation }} aggregation, PCA {{ c.system.pca }}, {{ c.system.search|upper }}
          <span title="{{ c.ranking.score_meaning }}">(score: {{ c.score_name }})</span><br>
          MAP@{{ top_n }} {{ fmt(c.map) }} &middot;
          <span class="ap">AP@{{ top_n }} for this query: <span class="ap-value">{{ fmt(c.ranking.ap) }}</span></span><br>
          {{ c.ranking.relevant|sum }} of {{ c.ranking.fnames|length }} carry {{ cls }} (&#10003;)</div>
      {% else %}
        <h2 class="system-name">System {{ "ABCD"[pos] }}</h2>
        <div class="meta">blind: name, scores, labels and AP shown after rating</div>
      {% endif %}
      <ol class="results">
      {% for f in c.ranking.fnames %}
        {% set rel = c.ranking.relevant[loop.index0] %}
        <li class="result{% if reveal and rel %} relevant{% endif %}">
          <button type="button" class="play secondary" data-src="{{ url_for('audio', fname=f) }}" title="play {{ f }}">&#9654;</button>
          <span class="rank">{{ loop.index }}.</span>
          <span class="fname">{{ f }}{% if reveal and rel %} <span class="mark" title="carries {{ cls }}">&#10003;</span>{% endif %}</span>
          <span class="score">{% if reveal %}{{ "%.3f"|format(c.ranking.scores[loop.index0]) }}{% endif %}</span>
          {% if reveal %}<span class="labels">{% for l in labels_of(f) %}<span class="tag{% if l == cls %} hit{% endif %}">{{ l }}</span>{% endfor %}</span>{% endif %}
        </li>
      {% endfor %}
      </ol>
      <div class="rate">
        <div>How similar to the query is this list?</div>
        <div class="stars">
        {% for r in range(rating_min, rating_max + 1) %}
          <label><input type="radio" name="rating_{{ pos }}" value="{{ r }}" required{% if rated %} disabled{% if rated.lists[pos].rating == r %} checked{% endif %}{% endif %}> {{ r }}</label>
        {% endfor %}
        </div>
        <label><input type="radio" name="best" value="{{ pos }}"{% if rated %} disabled{% if rated.best_position == pos %} checked{% endif %}{% endif %}> best list</label>
      </div>
    </section>
  {% endfor %}
  </div>
  {% if rated %}
  <div class="panel submit" id="done">
    <span>Rated by <b>{{ rated.listener }}</b> (#{{ rated.id }}).</span>
    {% if not query_chosen %}<a class="button" id="next" href="{{ redraw_url }}">Next query</a>{% endif %}
  </div>
  {% else %}
  <div class="panel submit">
    <label>Listener id <input type="text" name="listener" id="listener" required maxlength="64"
      pattern="[A-Za-z0-9._@-]+" title="letters, digits, . _ @ -" value="{{ listener }}"></label>
    <label>Comment <input type="text" name="comment" maxlength="500" size="40"></label>
    <span class="muted">1 = not similar at all &middot; 5 = every result sounds like the query</span>
    <button type="submit" id="submit-rating">Save rating</button>
  </div>
  {% endif %}
</form>
{% endif %}
{% endblock %}
{% block script %}
<script>
(function () {
  var player = new Audio(), current = null;
  function stop() { if (current) { current.classList.remove("playing"); current.innerHTML = "&#9654;"; current = null; } }
  player.addEventListener("ended", stop);
  player.addEventListener("error", stop);
  document.querySelectorAll("button.play").forEach(function (b) {
    b.addEventListener("click", function () {
      var again = current === b;
      player.pause(); stop();
      var q = document.getElementById("query-audio"); if (q) q.pause();
      if (again) return;
      player.src = b.dataset.src; current = b; b.classList.add("playing"); b.innerHTML = "&#9632;";
      player.play().catch(stop);
    });
  });
  window.soundsimPlayer = player;
  var cls = document.getElementById("class");
  if (cls) cls.addEventListener("change", function () {
    var q = document.getElementById("query-select"); if (q) q.value = "";
  });
  var who = document.getElementById("listener");
  if (who) {
    if (!who.value) { try { who.value = localStorage.getItem("soundsim-listener") || ""; } catch (e) {} }
    who.form.addEventListener("submit", function () {
      try { localStorage.setItem("soundsim-listener", who.value); } catch (e) {}
    });
  }
})();
</script>
{% endblock %}
"""

TEMPLATES = {"base.html": BASE, "message.html": MESSAGE, "page.html": PAGE}
