defmodule Mix.Tasks.Objectstorex.Sync do
  @shortdoc "Makes a destination prefix hold every object of a source prefix (resumable)"

  @moduledoc """
  Copies every object under `SRC` that is missing or different under `DST`, with
  `ObjectStoreX.Sync.run/3`: listings compared in key order, each copy checked, progress
  optionally kept in a checkpoint file so that an interrupted run can be resumed.

      mix objectstorex.sync [OPTIONS] SRC DST

  `SRC` and `DST` are prefixes: a local directory or any store URL `mix objectstorex.cp`
  accepts (`s3://bucket/prefix`, `az://container/prefix`, `gs://...`, `file:///dir`,
  `memory://...`, `http(s)://...`).

  ## Options

    * `--delete` - also delete objects under `DST` that `SRC` does not have (never when the
      listing of `SRC` did not complete)
    * `--dry-run` - list, compare and report; change nothing
    * `--checksum` - compare the SHA-256 of both sides of objects of equal size, instead of
      their modification dates
    * `--checkpoint FILE` - record progress in `FILE`; rerun with the same file to resume
    * `--concurrency N` - objects copied at once on each node, default 4
    * `--part-size SIZE` - multipart part size (and download chunk size) of each copy: bytes
      or a size with a unit, e.g. `8MiB`, `64M` (as `mix objectstorex.cp` reads it); at least
      5 MiB; default 8 MiB to cloud stores, 64 MiB to local and memory ones
    * `--part-concurrency N` - parts (or ranged GETs) in flight for each object; default 8 to
      cloud stores, 2 to local and memory ones
    * `--listing flat|tree` - how an S3, GCS, Azure or memory location is listed (the
      `:listing` option of `ObjectStoreX.Sync.run/3`): `flat` (default), one paginated listing
      of the whole prefix, about one request per 1,000 objects whatever the layout; or `tree`,
      one listing per `/` directory, several at once, one request per directory at least. Pick
      `tree` for a server whose flat listing slows down with the size of the prefix (such as
      s3s-fs, which walks and sorts the whole prefix for every page) and whose objects sit in
      a few large directories. Local directories and HTTP locations are always listed by
      directory
    * `--nodes n1@host,n2@host` - connect to these nodes and run workers there. The nodes
      need the same cookie and ObjectStoreX. A task not started distributed becomes
      `objectstorex_sync_PID@127.0.0.1` (or a short name, for short node names), which only
      nodes on this machine can reach: across machines, run it as
      `elixir --name NAME@HOST -S mix objectstorex.sync ...`
    * `--progress`, `--no-progress` - draw the progress bar or not; by default it is drawn when
      standard error is a terminal

  ## Output

  A progress bar (bytes copied and rate) on standard error, one line per failure on standard
  error, and a summary line:

      synced s3://a/data -> az://b/data: listed 1200, copied 37 (1.2 GiB), skipped 1163, deleted 0, failed 0 in 12.40 s, 99.1 MiB/s

  The exit status is non-zero when anything failed.

  Credentials come from the environment, as for `mix objectstorex.cp`.

  ## Without Mix

  `mix` loads the project and checks the build before every run, about a second. For syncs
  run often (cron, scripts), `MIX_ENV=prod mix objectstorex.launcher` writes a script that
  runs this task from the compiled code, with the same options, output and exit status:

      _build/prod/bin/objectstorex sync [OPTIONS] SRC DST
  """

  use Mix.Task

  alias ObjectStoreX.CLI
  alias ObjectStoreX.CLI.ProgressBar

  @task "objectstorex.sync"
  @switches [
    delete: :boolean,
    dry_run: :boolean,
    checksum: :boolean,
    checkpoint: :string,
    concurrency: :integer,
    part_size: :string,
    part_concurrency: :integer,
    listing: :string,
    nodes: :string,
    progress: :boolean
  ]

  @impl Mix.Task
  def run(args) do
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches)

    {src, dst} =
      case argv do
        [src, dst] ->
          {CLI.Location.as_store(CLI.location!(@task, src)),
           CLI.Location.as_store(CLI.location!(@task, dst))}

        _ ->
          CLI.fail!(@task, "expected SRC and DST, got #{length(argv)} argument(s)")
      end

    concurrency = CLI.positive!(@task, opts, :concurrency)
    part_size = CLI.part_size!(@task, opts[:part_size])
    part_concurrency = CLI.positive!(@task, opts, :part_concurrency)
    listing = listing!(opts[:listing])
    nodes = connect!(opts[:nodes])
    progress = Keyword.get_lazy(opts, :progress, &CLI.Format.tty?/0)
    source = CLI.open!(@task, src)
    dest = CLI.open!(@task, dst)
    reporter = if progress, do: ProgressBar.start(nil), else: nil

    sync_opts = [
      prefix: CLI.Location.prefix(src),
      dest_prefix: CLI.Location.prefix(dst),
      delete: opts[:delete] || false,
      dry_run: opts[:dry_run] || false,
      compare: if(opts[:checksum], do: :checksum, else: :size_mtime),
      checkpoint: opts[:checkpoint],
      concurrency: concurrency,
      part_size: part_size,
      max_concurrency: part_concurrency,
      listing: listing,
      nodes: nodes,
      on_progress: reporter && fn p -> ProgressBar.update(reporter, :sync, p.bytes) end
    ]

    result =
      try do
        ObjectStoreX.Sync.run(source, dest, sync_opts)
      after
        if reporter, do: ProgressBar.stop(reporter)
      end

    case result do
      {:ok, report} ->
        for {key, error} <- report.failed do
          IO.puts(:stderr, "failed #{key}: #{CLI.Credentials.redact(error.message)}")
        end

        IO.puts(summary(src, dst, report))
        failed = length(report.failed)

        if failed > 0,
          do: CLI.error!(@task, "#{failed} of #{report.listed} objects failed")

      {:error, error} ->
        CLI.error!(@task, error.message)
    end

    :ok
  end

  defp summary(src, dst, report) do
    verb = if report.dry_run, do: "would sync", else: "synced"

    "#{verb} #{CLI.Location.display(src)} -> #{CLI.Location.display(dst)}: listed #{report.listed}, " <>
      "copied #{report.copied} (#{CLI.Format.bytes(report.bytes)}), skipped #{report.skipped}, " <>
      "deleted #{report.deleted}, failed #{length(report.failed)} in " <>
      "#{CLI.Format.seconds(report.duration_us)}, #{CLI.Format.rate(report.bytes, report.duration_us)}"
  end

  defp listing!(nil), do: :flat

  defp listing!(mode) do
    case String.downcase(mode) do
      "flat" -> :flat
      "tree" -> :tree
      _ -> CLI.fail!(@task, "--listing must be flat or tree, got: #{mode}")
    end
  end

  defp connect!(nil), do: nil

  defp connect!(text) do
    nodes = text |> String.split(",", trim: true) |> Enum.map(&String.to_atom(String.trim(&1)))
    if nodes == [], do: CLI.fail!(@task, "--nodes names no node")

    unless Node.alive?() do
      longnames = Enum.any?(nodes, &(&1 |> Atom.to_string() |> String.contains?(".")))
      name = :"objectstorex_sync_#{System.pid()}"
      name = if longnames, do: :"#{name}@127.0.0.1", else: name

      case Node.start(name, if(longnames, do: :longnames, else: :shortnames)) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          CLI.error!(@task, "cannot start distribution (is epmd running?): #{inspect(reason)}")
      end
    end

    for node <- nodes, node != node(), not Node.connect(node) do
      CLI.error!(@task, "cannot connect to node #{node}")
    end

    nodes
  end
end
