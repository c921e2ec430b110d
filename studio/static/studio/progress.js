// Live progress of the videos on a topic page, in place (no reload, no build step).
// One request polls every running job on the page; the server derives each status
// (studio/status.py), this script only shows it. When a job ends, its card is swapped for
// the server-rendered one. One player at a time, opened on demand: a card holds no <video>
// until its Play is pressed. The batch summary ("7 of 12 stored") updates in place.
(function () {
  "use strict";
  const POLL_MS = 1500;
  const section = document.getElementById("videos");

  function formatBytes(bytes) {
    if (bytes == null) return "";
    const units = ["B", "KB", "MB", "GB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : value) + "\u00a0" + units[unit];
  }

  function formatElapsed(seconds) {
    if (seconds == null) return "";
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }

  function part(card, role) { return card.querySelector('[data-role="' + role + '"]'); }

  function showPlayerErrors(root) {
    root.querySelectorAll("video").forEach(function (video) {
      const message = video.parentElement.querySelector(".player-error");
      if (!message) return;
      const fail = function () { message.hidden = false; video.hidden = true; };
      if (video.error) fail();  // failed before this script ran
      video.addEventListener("error", fail);
    });
  }

  function enableCopyButtons(root) {
    root.querySelectorAll("[data-copy-url]").forEach(function (button) {
      button.addEventListener("click", async function () {
        const url = button.dataset.copyUrl;
        try {
          await navigator.clipboard.writeText(url);
        } catch (error) {  // no clipboard API (plain http on a LAN address): select and copy
          const field = document.createElement("textarea");
          field.value = url;
          document.body.appendChild(field);
          field.select();
          document.execCommand("copy");
          field.remove();
        }
        const label = button.textContent;
        button.textContent = "Link copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  }

  function closePlayer(card) {
    const video = card.querySelector(".poster video");
    if (!video) return;
    video.pause();
    video.remove();
    card.classList.remove("playing");
    const play = card.querySelector('[data-action="play"]');
    if (play) play.hidden = false;
  }

  function openPlayer(card, link) {
    document.querySelectorAll("article.lesson.playing").forEach(function (other) {
      if (other !== card) closePlayer(other);
    });
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "none";
    video.autoplay = true;
    if (link.dataset.posterUrl) video.poster = link.dataset.posterUrl;
    video.src = link.dataset.playUrl;
    video.dataset.stored = link.dataset.stored;
    if (link.dataset.captionsUrl) {  // served from this origin: no CORS needed
      const track = document.createElement("track");
      track.kind = "captions";
      track.src = link.dataset.captionsUrl;
      track.srclang = link.dataset.captionsLanguage;
      track.label = "Captions (" + link.dataset.captionsLanguage + ")";
      track.default = true;
      video.appendChild(track);
    }
    link.hidden = true;
    link.parentElement.insertBefore(video, link);
    card.classList.add("playing");
    showPlayerErrors(card);
    video.focus();
  }

  function enablePlayButtons(root) {
    root.querySelectorAll('[data-action="play"]').forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        openPlayer(link.closest("article"), link);
      });
    });
  }

  function update(card, job) {
    const status = part(card, "status");
    status.textContent = job.status.label;
    status.className = "badge video-status " + job.status.kind;
    card.dataset.jobState = job.state;
    card.dataset.statusKind = job.status.kind;
    const cancel = part(card, "cancel");
    if (cancel) cancel.hidden = job.state !== "queued";
    // One status line: the badge says the state; beside it, only what it does not say
    // (a regeneration's current step) and the time in this step.
    const elapsed = formatElapsed(job.elapsed_seconds);
    const label = job.status.label;
    let step = job.status.step && job.status.step !== label ? job.status.step : "";
    if (elapsed) {
      step = step.replace(/ \((\d+ s|\d+ min|\d+ h \d+ min)\)$/, "");  // said once
      status.textContent = label.replace(/ \((\d+ s|\d+ min|\d+ h \d+ min)\)$/, "");
    }
    part(card, "step").textContent = [step, elapsed ? elapsed + " in this step" : ""]
      .filter(Boolean).join(" · ");
    const bar = part(card, "bar");
    const bytes = part(card, "bytes");
    if (job.state === "downloading" || job.state === "uploading") {
      bar.hidden = job.percent == null;
      if (job.percent != null) bar.value = job.percent;
      bytes.textContent = formatBytes(job.bytes_copied) +
        (job.bytes_total ? " of " + formatBytes(job.bytes_total) + " (" + job.percent + "%)" : " copied");
    } else {
      bar.hidden = true;
      bytes.textContent = job.attempts > 1 ? "Attempt " + job.attempts : "";
    }
    part(card, "progress").hidden = false;
    const next = part(card, "next-step");
    next.textContent = job.status.next_step;
    next.hidden = !job.status.next_step;
  }

  async function replaceCard(card) {
    const response = await fetch(card.dataset.cardUrl, {credentials: "same-origin"});
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = (await response.text()).trim();
    const fresh = holder.firstElementChild;
    card.replaceWith(fresh);
    showPlayerErrors(fresh);
    enableCopyButtons(fresh);
    enablePlayButtons(fresh);
  }

  const summary = document.getElementById("batch-summary");

  async function pollSummary() {
    if (!summary || summary.dataset.done === "1") return;
    try {
      const response = await fetch(summary.dataset.url, {credentials: "same-origin"});
      if (response.ok) {
        const batch = await response.json();
        summary.querySelector('[data-role="batch-text"]').textContent = batch.text;
        if (batch.done) { summary.dataset.done = "1"; return; }
      }
    } catch (error) {
      // A network hiccup: the next tick tries again.
    }
    setTimeout(pollSummary, POLL_MS);
  }

  function showFormErrors() {
    const errors = document.getElementById("form-errors");
    if (!errors) return;
    errors.scrollIntoView({block: "start"});
    errors.focus({preventScroll: true});
  }

  async function poll() {
    const running = section.querySelectorAll('article[data-job-id][data-active="1"]');
    if (!running.length) return;
    const url = new URL(section.dataset.progressUrl, window.location.href);
    running.forEach(function (card) { url.searchParams.append("id", card.dataset.jobId); });
    try {
      const response = await fetch(url, {credentials: "same-origin"});
      if (response.ok) {
        const jobs = (await response.json()).jobs;
        for (const job of jobs) {
          const card = section.querySelector('article[data-job-id="' + job.id + '"]');
          if (!card) continue;
          if (job.is_terminal) {
            await replaceCard(card);
          } else {
            update(card, job);
          }
        }
      }
    } catch (error) {
      // A network hiccup: the next tick tries again.
    }
    setTimeout(poll, POLL_MS);
  }

  showPlayerErrors(document);
  enableCopyButtons(document);
  enablePlayButtons(document);
  showFormErrors();
  if (section) poll();
  pollSummary();
})();
