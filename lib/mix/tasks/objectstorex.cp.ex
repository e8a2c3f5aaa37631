defmodule Mix.Tasks.Objectstorex.Cp do
  @shortdoc "Copies objects between local files and any object stores"

  @moduledoc """
  Copies an object, or with `--recursive` every object under a prefix, between local files and
  object stores of any kind.

      mix objectstorex.cp [OPTIONS] SRC DST

  `SRC` and `DST` are each a local path or a store URL:

    * `/local/path`, `relative/path` - a local file (or directory, with `--recursive`)
    * `file:///dir/key` - an object of the local-filesystem store
    * `memory://key` - the in-memory store, one for the whole run (so
      `mix do objectstorex.cp a memory://x, objectstorex.cp memory://x b` round-trips)
    * `s3://bucket/key` (also `s3a://`), `gs://bucket/key`
    * `az://container/key` (also `azure://`),
      `abfs://container@account.dfs.core.windows.net/key` (also `abfss://`)
    * `http://host:port/path`, `https://...` - a plain HTTP or WebDAV server

  A `DST` ending in `/` (or naming an existing local directory) receives the object under its
  source's name.

  ## Options

    * `-r`, `--recursive` - copy every object under `SRC` (a prefix or a directory) to the same
      relative key under `DST`; failures are reported one by one, the others still copied, and
      the task exits non-zero if any failed
    * `--checksum ALGORITHM` - `sha256`, `sha1`, `md5` or `crc32c`: the digest is computed while
      the bytes flow, printed with the summary, and the byte count is checked against the
      source's size
    * `--concurrency N` - parts uploaded (or ranged GETs, downloading to a file) in flight for
      each object; default 8 on cloud stores, 2 on local and memory ones
    * `--part-size SIZE` - multipart part size (and download chunk size): bytes or a size with a
      unit, e.g. `8MiB`, `64M` (K, M, G, KiB, MiB, GiB: powers of 1024; KB, MB, GB: of 1000);
      at least 5 MiB; default 8 MiB on cloud stores, 64 MiB on local and memory ones
    * `--jobs N` - objects copied at once with `--recursive`, default 4
    * `--progress`, `--no-progress` - draw the progress bar or not; by default it is drawn when
      standard error is a terminal

  ## Output

  On a terminal, a progress bar (bytes done and total, rate, time left) is redrawn in place on
  standard error. Each copy then prints one line on standard output:

      copied /tmp/a.bin -> s3://bucket/a.bin: 268435456 bytes (256.0 MiB) in 1.42 s, 180.3 MiB/s, sha256 9f86...

  and a recursive copy ends with a line for the whole run. The exit status is non-zero when
  anything failed.

  ## Credentials

  Read from the providers' standard environment variables (`AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
  `AWS_ALLOW_HTTP`, ...; `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_APPLICATION_CREDENTIALS`, ...;
  `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`,
  `AZURE_STORAGE_USE_EMULATOR`, ...). With none set for a cloud store the task stops before
  any request instead of asking the cloud's instance-metadata service; on a cloud VM, set
  `OBJECTSTOREX_ALLOW_INSTANCE_METADATA=true` to use it. Secret values never appear in the
  output.

  ## Examples

      mix objectstorex.cp --checksum sha256 backup.tar s3://my-bucket/backups/
      mix objectstorex.cp --recursive s3://my-bucket/logs/2025/ az://archive/logs/2025/
      mix objectstorex.cp gs://public-data/file.csv ./file.csv
  """

  use Mix.Task

  alias ObjectStoreX.CLI
  alias ObjectStoreX.CLI.Copy

  @task "objectstorex.cp"
  @switches [
    recursive: :boolean,
    checksum: :string,
    concurrency: :integer,
    part_size: :string,
    jobs: :integer,
    progress: :boolean
  ]
  @checksums Map.new(ObjectStoreX.Args.hashes(), &{Atom.to_string(&1), &1})

  @impl Mix.Task
  def run(args) do
    # Runnable again in the same session: `mix do objectstorex.cp a b, objectstorex.cp b c`.
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches, r: :recursive)

    {src, dst} =
      case argv do
        [src, dst] -> {CLI.location!(@task, src), CLI.location!(@task, dst)}
        _ -> CLI.fail!(@task, "expected SRC and DST, got #{length(argv)} argument(s)")
      end

    copy_opts = %{
      checksum: checksum!(opts[:checksum]),
      part_size: CLI.part_size!(@task, opts[:part_size]),
      concurrency: CLI.positive!(@task, opts, :concurrency),
      jobs: CLI.positive!(@task, opts, :jobs) || 4,
      progress: Keyword.get_lazy(opts, :progress, &CLI.Format.tty?/0)
    }

    CLI.start!()

    if opts[:recursive],
      do: Copy.recursive!(@task, src, dst, copy_opts),
      else: Copy.single!(@task, src, dst, copy_opts)
  end

  defp checksum!(nil), do: nil

  defp checksum!(name) do
    case Map.fetch(@checksums, String.downcase(name)) do
      {:ok, algorithm} ->
        algorithm

      :error ->
        CLI.fail!(
          @task,
          "--checksum must be one of #{Enum.join(Map.keys(@checksums), ", ")}, got: #{name}"
        )
    end
  end
end
