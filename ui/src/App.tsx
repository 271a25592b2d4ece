// The shell: the session, the route, the header with sign-out. Pages get the API client and the
// session; a navigation is a History API push, and the back button re-reads the route.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "./client";
import { mlflowLinkPath, parseRoute, routePath, type Route } from "./lib/router";
import type { Session } from "./lib/types";
import { SignIn } from "./pages/SignIn";
import { Projects } from "./pages/Projects";
import { Runs } from "./pages/Runs";
import { RunPage } from "./pages/RunPage";
import { ModelPage, Models } from "./pages/Models";
import { Compare } from "./pages/Compare";
import { JobPage, Jobs } from "./pages/Jobs";
import { PipelineRunPage, Pipelines } from "./pages/Pipelines";
import { Experiments } from "./pages/Experiments";
import { Members } from "./pages/Members";
import { DatasetPage, Datasets } from "./pages/Datasets";
import { SweepPage, Sweeps } from "./pages/Sweeps";
import { DeploymentPage, Deployments } from "./pages/Deployments";
import { Webhooks } from "./pages/Webhooks";
import { Agents } from "./pages/Agents";
import { Audit } from "./pages/Audit";
import { Tokens } from "./pages/Tokens";

export function App() {
  const [route, setRoute] = useState<Route>(() => {
    const fromMlflow = location.pathname === "/" ? mlflowLinkPath(location.hash) : null;
    if (fromMlflow) history.replaceState(null, "", fromMlflow);
    return parseRoute(location.pathname, location.search);
  });
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  const navigate: Navigate = (r) => {
    const path = routePath(r);
    if (path !== location.pathname + location.search) history.pushState(null, "", path);
    setRoute(r);
  };

  useEffect(() => {
    const onPop = () => setRoute(parseRoute(location.pathname, location.search));
    addEventListener("popstate", onPop);
    api.onUnauthorized = () => {
      setError("Your session ended: sign in again.");
      setSession(null);
    };
    api.current().then(setSession, (e: Error) => {
      setError(e.message);
      setSession(null);
    });
    return () => removeEventListener("popstate", onPop);
  }, []);

  useEffect(() => {
    if (session && route.page === "signin") navigate({ page: "projects" });
  }, [session, route.page]);

  if (session === undefined) return <main class="page"><p role="status">Loading…</p></main>;

  if (!session) {
    return (
      <main class="page narrow">
        <h1 class="brand">Cairn</h1>
        {error && <p class="error" role="alert">{error}</p>}
        <SignIn onSignedIn={(s) => { setError(null); setSession(s); }} />
      </main>
    );
  }

  const signOut = async () => {
    try {
      await api.signOut();
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    setSession(null);
    navigate({ page: "signin" });
  };

  return (
    <>
      <header class="top">
        <a class="brand" href="/projects" onClick={(e) => { e.preventDefault(); navigate({ page: "projects" }); }}>Cairn</a>
        <nav aria-label="Site" class="sitenav">
          <a href="/agents" onClick={(e) => { e.preventDefault(); navigate({ page: "agents" }); }}>Agents</a>
          <a href="/tokens" onClick={(e) => { e.preventDefault(); navigate({ page: "tokens" }); }}>Tokens</a>
          {(session.site_admin || Object.values(session.projects).includes("admin")) && <a href="/audit" onClick={(e) => { e.preventDefault(); navigate({ page: "audit" }); }}>Audit log</a>}
        </nav>
        <span class="who">Signed in as <strong>{session.user}</strong>{session.site_admin ? " (site admin)" : ""}</span>
        <button type="button" onClick={signOut}>Sign out</button>
      </header>
      <main class="page">
        {error && <p class="error" role="alert">{error}</p>}
        {route.page === "signin" || route.page === "projects" ? <Projects session={session} navigate={navigate} />
          : route.page === "runs" ? <Runs key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "run" ? <RunPage key={route.runId} project={route.project} runId={route.runId} session={session} navigate={navigate} />
          : route.page === "models" ? <Models key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "model" ? <ModelPage key={`${route.project}/${route.model}`} project={route.project} model={route.model} session={session} navigate={navigate} />
          : route.page === "compare" ? <Compare key={route.project} project={route.project} runIds={route.runs} navigate={navigate} />
          : route.page === "jobs" ? <Jobs key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "job" ? <JobPage key={route.jobId} project={route.project} jobId={route.jobId} session={session} navigate={navigate} />
          : route.page === "pipelines" ? <Pipelines key={route.project} project={route.project} navigate={navigate} />
          : route.page === "pipeline" ? <PipelineRunPage key={route.runId} project={route.project} runId={route.runId} session={session} navigate={navigate} />
          : route.page === "experiments" ? <Experiments key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "members" ? <Members key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "datasets" ? <Datasets key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "dataset" ? <DatasetPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} session={session} navigate={navigate} />
          : route.page === "sweeps" ? <Sweeps key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "sweep" ? <SweepPage key={route.sweepId} project={route.project} sweepId={route.sweepId} session={session} navigate={navigate} />
          : route.page === "deployments" ? <Deployments key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "deployment" ? <DeploymentPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} session={session} navigate={navigate} />
          : route.page === "webhooks" ? <Webhooks key={route.project} project={route.project} session={session} navigate={navigate} />
          : route.page === "agents" ? <Agents session={session} navigate={navigate} />
          : route.page === "audit" ? <Audit session={session} navigate={navigate} />
          : route.page === "tokens" ? <Tokens session={session} navigate={navigate} />
          : <p>No page at <code>{route.path}</code>. <a href="/projects">Projects</a></p>}
      </main>
    </>
  );
}
