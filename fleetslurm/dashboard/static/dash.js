// fleetslurm dashboard: live fragments over server-sent events, the action
// buttons, a job's output as it grows, and the uPlot charts. No framework:
// the server renders every fragment; this file only puts them in place, and
// counts running jobs' TIME on between them.
"use strict";
(function () {
  const token = document.querySelector('meta[name="token"]').content;
  const withToken = (url) => url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  const live = document.getElementById("live");
  const flash = document.getElementById("flash");

  function say(text, ok) {
    flash.textContent = text;
    flash.className = ok ? "ok" : "refused";
  }

  // squeue's TIME cell (src/squeue/print.c _print_secs): M:SS, H:MM:SS, D-HH:MM:SS
  function squeueTime(secs) {
    const s = Math.max(0, Math.floor(secs)), two = (n) => String(n).padStart(2, "0");
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + "-" + two(h) + ":" + two(m) + ":" + two(x);
    if (h) return h + ":" + two(m) + ":" + two(x);
    return m + ":" + two(x);
  }
  // a running job's TIME counts on here, from when it was 0:00 (data-since,
  // the server's clock): the server pushes the queue only when it changes
  let skew = 0;  // the server's clock less this browser's, in seconds
  function takeClock(root) {
    const t = root.querySelector("[data-now]");
    if (t && t.dataset.now) skew = parseFloat(t.dataset.now) - Date.now() / 1000;
  }
  function tick() {
    const now = Date.now() / 1000 + skew;
    document.querySelectorAll("td[data-since]").forEach((td) => {
      const text = squeueTime(now - parseFloat(td.dataset.since));
      if (td.textContent !== text) td.textContent = text;
    });
  }
  takeClock(document);
  tick();
  setInterval(tick, 1000);

  // a fragment the server re-renders and pushes when it changes
  document.querySelectorAll("[data-sse]").forEach((el) => {
    const src = new EventSource(withToken(el.dataset.sse));
    src.addEventListener("html", (ev) => {
      el.innerHTML = ev.data;
      takeClock(el);
      tick();
      drawSparks(el);
      live.className = "on";
    });
    src.onerror = () => { live.className = "off"; };
  });

  // output: appended as it comes, until the job has ended
  document.querySelectorAll("pre[data-output]").forEach((out) => {
    const src = new EventSource(withToken(out.dataset.output));
    src.addEventListener("data", (ev) => {
      out.textContent += JSON.parse(ev.data);
      out.scrollTop = out.scrollHeight;
    });
    src.addEventListener("end", () => { src.close(); out.classList.add("ended"); });
    // said where the output would be: the flash answers clicks, and a look
    // at another user's job (its output theirs to read) is no refused click
    src.addEventListener("fail", (ev) => {
      src.close();
      const why = document.createElement("p");
      why.className = "error output-fail";
      why.textContent = "output: " + ev.data;
      out.after(why);
    });
  });

  // the buttons: the controller decides, the page shows its answer
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    ev.preventDefault();
    b.disabled = true;
    try {
      const r = await fetch("/api/action", {
        method: "POST",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify({ action: b.dataset.action, job: b.dataset.job }),
      });
      const reply = await r.json();
      say(reply.message, reply.ok);
    } catch (e) {
      say(String(e), false);
    } finally {
      b.disabled = false;
    }
  });
  window.fleetAction = async (action, job) => {  // for scripts and tests
    const r = await fetch("/api/action", {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ action: action, job: String(job) }),
    });
    const reply = await r.json();
    say(reply.message, reply.ok);
    return reply;
  };

  function drawSparks(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll(".spark[data-series]").forEach((el) => {
      const s = JSON.parse(el.dataset.series);
      if (s[0].length < 2) { el.textContent = "load: sampling…"; return; }
      el.textContent = "";
      new uPlot({ width: 260, height: 50, legend: { show: false }, cursor: { show: false },
                  axes: [{ show: false }, { show: false }],
                  series: [{}, { stroke: "#2a7", width: 1.5, fill: "rgba(40,160,110,.15)" }] },
                s, el);
    });
  }
  drawSparks(document);

  // a job's CPU and memory over time (its supervisor's samples), asked
  // again every few seconds while it runs
  const us = document.getElementById("usage");
  if (us && typeof uPlot !== "undefined") {
    let plot = null;
    const refresh = async () => {
      let d;
      try {
        const r = await fetch(withToken(us.dataset.usage));
        if (!r.ok) return;
        d = await r.json();
      } catch (e) {
        setTimeout(refresh, 5000);  // the dashboard restarting: try again
        return;
      }
      const rows = [d.t, d.cpu, d.rss_mb];
      if (d.t.length > 0) {
        if (plot === null) {
          us.textContent = "";
          plot = new uPlot({
            width: 560, height: 220,
            scales: { x: { time: true }, cpu: { range: (u, lo, hi) => [0, Math.max(1, hi)] },
                      mem: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
            series: [{}, { label: "CPUs busy", scale: "cpu", stroke: "#27c", width: 2 },
                     { label: "memory (MiB)", scale: "mem", stroke: "#c72", width: 2 }],
            axes: [{}, { scale: "cpu", label: "CPUs" },
                   { scale: "mem", side: 1, label: "MiB", grid: { show: false } }],
          }, rows, us);
        } else {
          plot.setData(rows);
        }
      }
      if (d.denied) us.textContent = "usage: Access/permission denied";
      us.dataset.points = String(d.t.length);
      us.dataset.state = d.state || "";
      if (d.live) setTimeout(refresh, 3000);
    };
    refresh();
  }

  const ph = document.getElementById("perhour");
  if (ph && typeof uPlot !== "undefined") {
    const d = JSON.parse(ph.dataset.chart);
    const start = Math.floor(d.since / 3600) * 3600, hours = [];
    for (let t = start; t <= d.now; t += 3600) hours.push(t);
    const at = (rows) => { const m = new Map(rows); return hours.map((h) => m.get(h) || 0); };
    new uPlot({ width: 900, height: 220,
                series: [{}, { label: "started", stroke: "#27c", width: 2 },
                         { label: "ended", stroke: "#c72", width: 2 }] },
              [hours, at(d.started), at(d.ended)], ph);
  }
})();
