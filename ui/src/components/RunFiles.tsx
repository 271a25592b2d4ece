// The run page's file browsers (issue 22): "Code", the files of the run's code snapshot (the
// archive named by its reproducibility record, docs/reproducibility.md) with a file shown with line
// numbers; and "Artifacts", the run's artifacts as a tree (directories and models opened through
// their manifests) with sizes, digests, download links and a preview of the selected file.
// Artifacts logged while the page is open appear (run.artifact_logged over SSE).
import { useEffect, useState } from "preact/hooks";
import { api } from "../client";
import { reloadUntil } from "../lib/action";
import { ApiError } from "../lib/api";
import {
  archiveFileUrl, archiveUrl, artifactEntries, artifactsUrl, environmentUrl, formatSize, manifestUrl,
  type Artifact, type FileEntry, type ManifestEntry,
} from "../lib/files";
import { TEXT_LIMIT } from "../lib/preview";
import { LiveState, useEventStream } from "./EventStream";
import { FileTree } from "./FileTree";
import { NumberedText, Preview, Truncated } from "./Preview";
import "./files.css";

const ARTIFACT_EVENTS = ["run.artifact_logged"] as const;

interface CodeRecord { archive_digest?: string; commit?: string | null; branch?: string | null; dirty?: boolean; files?: number }
interface CodeFile { path: string; size: number; text: string | null; truncated: boolean; binary: boolean }

function CodeBrowser({ project, runId }: { project: string; runId: string }) {
  const [code, setCode] = useState<CodeRecord | null | undefined>(undefined);
  const [files, setFiles] = useState<FileEntry[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [file, setFile] = useState<CodeFile | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setCode(undefined);
    setFiles(null);
    api.get<{ code: CodeRecord | null }>(environmentUrl(project, runId)).then(async (env) => {
      setCode(env.code ?? null);
      if (!env.code?.archive_digest) return;
      const listing = await api.get<{ files: FileEntry[]; truncated: boolean }>(archiveUrl(env.code.archive_digest));
      setFiles(listing.files);
    }).catch((e: Error) => {
      if (e instanceof ApiError && e.status === 404) setCode(null);
      else setError(e.message);
    });
  }, [project, runId]);

  const open = (f: FileEntry) => {
    setSelected(f.path);
    setFile(null);
    api.get<CodeFile>(archiveFileUrl(code!.archive_digest!, f.path)).then(setFile, (e: Error) => setError(e.message));
  };

  return (
    <section class="files-browser" aria-labelledby="files-code-h">
      <h2 id="files-code-h">Code</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {code === undefined && !error && <p role="status">Loading the code snapshot…</p>}
      {code === null && <p class="help">This run has no code snapshot (it was not started in a folder Cairn could snapshot).</p>}
      {code && !code.archive_digest && <p class="help">This run's code record has no archive.</p>}
      {code?.archive_digest && (
        <>
          <p class="help">
            {code.commit ? <>Commit <code>{code.commit.slice(0, 12)}</code>{code.branch ? ` on ${code.branch}` : ""}{code.dirty ? ", with uncommitted changes" : ""}. </> : null}
            {code.files ?? "?"} files in archive <code title={code.archive_digest}>{code.archive_digest.slice(0, 12)}…</code>.
          </p>
          {!files ? <p role="status">Loading files…</p> : (
            <div class="files-panes">
              <FileTree label="Code snapshot files" entries={files} selected={selected} onSelect={open} />
              {selected && (
                <section class="files-preview" aria-label={`Code file ${selected}`}>
                  <h3>{selected}</h3>
                  {!file ? <p role="status">Loading…</p> : file.binary || file.text === null
                    ? <p class="help">A binary file ({formatSize(file.size)}): no text to show.</p>
                    : (
                      <>
                        <NumberedText text={file.text} label={`Source of ${file.path}`} />
                        {file.truncated && <Truncated shown={TEXT_LIMIT} size={file.size} />}
                      </>
                    )}
                </section>
              )}
            </div>
          )}
        </>
      )}
    </section>
  );
}

function ArtifactBrowser({ project, runId }: { project: string; runId: string }) {
  const [artifacts, setArtifacts] = useState<Artifact[] | null>(null);
  const [manifests, setManifests] = useState<Record<string, ManifestEntry[]>>({});
  const [selected, setSelected] = useState<(FileEntry & { digest: string }) | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    try {
      const list = (await api.get<{ artifacts: Artifact[] }>(artifactsUrl(project, runId))).artifacts;
      const found: Record<string, ManifestEntry[]> = {};
      await Promise.all(list.filter((a) => a.kind !== "file").map(async (a) => {
        found[a.digest] = (await api.get<{ entries: ManifestEntry[] }>(manifestUrl(a.digest))).entries;
      }));
      setManifests(found);
      setArtifacts(list);
      setError(null);
      return list.length;
    } catch (e) {
      setError((e as Error).message);
      return null;
    }
  };
  const live = useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project, types: "run.artifact_logged" })}`,
    ARTIFACT_EVENTS, (e) => {
      if (e.aggregate_id !== runId) return;
      // read until the list shows the new artifact (the read model may lag the event)
      const before = artifacts?.length ?? 0;
      void reloadUntil(load, (n) => n === null || n > before);
    });
  // loaded at first and again once the stream is live (an artifact logged in between shows)
  useEffect(() => { void load(); }, [project, runId, live === "live"]);

  const entries = artifacts ? artifactEntries(artifacts, manifests) : [];
  return (
    <section class="files-browser" aria-labelledby="files-artifacts-h">
      <h2 id="files-artifacts-h">Artifacts <LiveState live={live} /></h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!artifacts ? (!error && <p role="status">Loading artifacts…</p>) : artifacts.length === 0 ? <p>No artifacts yet.</p> : (
        <div class="files-panes">
          <FileTree label="Artifact files" entries={entries} selected={selected?.path ?? null} downloads
            onSelect={(f) => f.digest && setSelected({ ...f, digest: f.digest })} />
          {selected && <Preview file={selected} />}
        </div>
      )}
    </section>
  );
}

export function RunFiles({ project, runId }: { project: string; runId: string }) {
  return (
    <div class="files">
      <CodeBrowser project={project} runId={runId} />
      <ArtifactBrowser project={project} runId={runId} />
    </div>
  );
}
