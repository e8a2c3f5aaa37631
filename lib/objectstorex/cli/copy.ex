defmodule ObjectStoreX.CLI.Copy do
  @moduledoc false
  # The copy engine of `mix objectstorex.cp`: one object or a whole prefix, between local files
  # and stores of any kind.
  #
  # Each copy is one library call that moves the bytes natively, reporting to the bar through
  # its `:on_progress`: `upload_file/4` (file -> store), `download_file/4` (store -> file) and
  # `transfer/5` (store -> store), each computing the `--checksum` digest natively.

  alias ObjectStoreX.CLI
  alias ObjectStoreX.CLI.ProgressBar
  alias ObjectStoreX.Error

  @type endpoint ::
          {:file, CLI.Location.t()}
          | {:object, ObjectStoreX.Store.t(), CLI.Location.t()}

  @type opts :: %{
          checksum: atom() | nil,
          part_size: pos_integer() | nil,
          concurrency: pos_integer() | nil,
          jobs: pos_integer(),
          progress: boolean()
        }

  # ---------------------------------------------------------------------------------------------
  # One object

  @doc "Copies one object or file; raises `Mix.Error` on failure."
  @spec single!(String.t(), CLI.Location.t(), CLI.Location.t(), opts()) :: :ok
  def single!(task, src, dst, opts) do
    src_endpoint = source!(task, src)

    dst =
      if CLI.Location.dir?(dst), do: CLI.Location.join(dst, CLI.Location.basename(src)), else: dst

    dst_endpoint = destination!(task, src, dst)

    if CLI.Location.display(src) == CLI.Location.display(dst),
      do: CLI.error!(task, "#{CLI.Location.display(src)}: source and destination are the same")

    # The total comes from the copy's own progress reports: no extra request for it.
    reporter = if opts.progress, do: ProgressBar.start(nil), else: nil

    result = copy(src_endpoint, dst_endpoint, opts, reporter, 1)
    if reporter, do: ProgressBar.stop(reporter)

    case result do
      {:ok, summary} -> IO.puts(summary_line(src, dst, summary, opts))
      {:error, message} -> CLI.error!(task, message)
    end

    :ok
  end

  defp source!(task, %{kind: :path, path: path} = loc) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :regular}} ->
        {:file, loc}

      {:ok, %File.Stat{type: :directory}} ->
        CLI.error!(task, "#{path} is a directory: copy it with --recursive")

      {:ok, %File.Stat{type: type}} ->
        CLI.error!(task, "#{path} is not a regular file (#{type})")

      {:error, reason} ->
        CLI.error!(task, "#{path}: #{:file.format_error(reason)}")
    end
  end

  defp source!(task, loc) do
    if CLI.Location.dir?(loc) do
      CLI.error!(
        task,
        "#{CLI.Location.display(loc)} names a prefix, not an object: copy it with --recursive"
      )
    end

    {:object, CLI.open!(task, loc), loc}
  end

  # A local destination is written as a file, except from a local file, where it is an object
  # of the filesystem store (so that upload_file/4 copies it natively).
  defp destination!(_task, _src, %{kind: :path} = dst), do: {:file, dst}
  defp destination!(task, _src, dst), do: {:object, CLI.open!(task, dst), dst}

  # ---------------------------------------------------------------------------------------------
  # A prefix

  @doc """
  Copies every object under `src` to the same relative key under `dst`, `opts.jobs` at once.
  Reports each failure and raises `Mix.Error` at the end if any copy failed.
  """
  @spec recursive!(String.t(), CLI.Location.t(), CLI.Location.t(), opts()) :: :ok
  def recursive!(task, src, dst, opts) do
    source = if src.kind == :store, do: {:store, CLI.open!(task, src)}, else: :files
    # Files copied to files are objects of the filesystem store (see destination!/3).
    dst_store =
      cond do
        dst.kind == :store -> CLI.open!(task, dst)
        src.kind == :path -> file_store()
        true -> nil
      end

    # The bar needs the total first; without one, the listing streams into the copies.
    {items, total} =
      if opts.progress do
        items = listing(task, src, fn -> Enum.to_list(list!(task, source, src)) end)
        {items, items |> Enum.map(&elem(&1, 1)) |> Enum.sum()}
      else
        {list!(task, source, src), nil}
      end

    reporter = if opts.progress, do: ProgressBar.start(total), else: nil
    started = System.monotonic_time(:microsecond)

    totals =
      try do
        listing(task, src, fn -> copy_all(items, src, dst, source, dst_store, opts, reporter) end)
      after
        if reporter, do: ProgressBar.stop(reporter)
      end

    micros = System.monotonic_time(:microsecond) - started

    case totals do
      %{copied: 0, failed: 0} ->
        CLI.error!(task, "no objects under #{CLI.Location.display(src)}")

      %{copied: copied, failed: failed, bytes: bytes} ->
        IO.puts(
          "copied #{plural(copied, "object")}, #{bytes} bytes (#{CLI.Format.bytes(bytes)}) in " <>
            "#{CLI.Format.seconds(micros)}, #{CLI.Format.rate(bytes, micros)}" <>
            if(failed > 0, do: "; #{failed} failed", else: "")
        )

        if failed > 0,
          do: CLI.error!(task, "#{failed} of #{copied + failed} objects failed to copy")
    end

    :ok
  end

  defp copy_all(items, src, dst, source, dst_store, opts, reporter) do
    items
    |> Stream.with_index(1)
    |> Task.async_stream(
      fn {{relative, _size}, id} ->
        s = CLI.Location.join(src, relative)
        d = CLI.Location.join(dst, relative)
        {s, d, copy(endpoint(source, s), target(dst_store, d), opts, reporter, id)}
      end,
      max_concurrency: opts.jobs,
      ordered: false,
      timeout: :infinity
    )
    |> Enum.reduce(%{copied: 0, failed: 0, bytes: 0}, fn
      {:ok, {s, d, {:ok, summary}}}, acc ->
        say(reporter, :stdio, summary_line(s, d, summary, opts))
        %{acc | copied: acc.copied + 1, bytes: acc.bytes + summary.bytes}

      {:ok, {_s, _d, {:error, message}}}, acc ->
        say(reporter, :stderr, "failed " <> CLI.Credentials.redact(message))
        %{acc | failed: acc.failed + 1}
    end)
  end

  # Copies catch their own failures, so an ObjectStoreX.Error that escapes comes from the
  # listing (no such bucket, refused credentials).
  defp listing(task, src, fun) do
    fun.()
  rescue
    e in Error -> CLI.error!(task, "cannot list #{CLI.Location.display(src)}: #{e.message}")
  end

  defp say(nil, device, line), do: IO.puts(device, line)
  defp say(reporter, device, line), do: ProgressBar.line(reporter, device, line)

  defp plural(1, word), do: "1 #{word}"
  defp plural(n, word), do: "#{n} #{word}s"

  # `{relative_key, size}` of everything under the source, lazily.
  defp list!(_task, {:store, store}, src) do
    prefix = CLI.Location.prefix(src)
    strip = if prefix, do: prefix <> "/", else: ""

    ObjectStoreX.Stream.list_stream(store, prefix: prefix)
    |> Stream.map(fn meta -> {String.replace_prefix(meta.location, strip, ""), meta.size} end)
  end

  defp list!(task, :files, %{path: path}) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :directory}} -> walk(path, "")
      {:ok, _} -> CLI.error!(task, "#{path} is not a directory (--recursive copies a directory)")
      {:error, reason} -> CLI.error!(task, "#{path}: #{:file.format_error(reason)}")
    end
  end

  # Regular files below `dir`, depth first, as `{relative_path, size}`; symbolic links are not
  # followed (a link to a parent directory would never end).
  defp walk(dir, relative) do
    dir
    |> Path.join(relative)
    |> File.ls!()
    |> Enum.sort()
    |> Stream.flat_map(fn name ->
      rel = if relative == "", do: name, else: Path.join(relative, name)

      case File.lstat(Path.join(dir, rel)) do
        {:ok, %File.Stat{type: :regular, size: size}} -> [{rel, size}]
        {:ok, %File.Stat{type: :directory}} -> walk(dir, rel)
        _ -> []
      end
    end)
  end

  defp endpoint({:store, store}, loc), do: {:object, store, loc}
  defp endpoint(:files, loc), do: {:file, loc}

  defp target(nil, d), do: {:file, d}
  defp target(store, d), do: {:object, store, d}

  defp file_store do
    {:ok, store} = CLI.Credentials.open(CLI.Location.as_store(elem(CLI.Location.parse("/"), 1)))
    store
  end

  # ---------------------------------------------------------------------------------------------
  # The copies

  @doc false
  @spec copy(endpoint(), endpoint(), opts(), pid() | nil, term()) ::
          {:ok, %{bytes: non_neg_integer(), digest: String.t() | nil, micros: pos_integer()}}
          | {:error, String.t()}
  def copy(src, {:file, %{kind: :path} = dst}, opts, reporter, id) when elem(src, 0) == :file do
    copy(src, {:object, file_store(), CLI.Location.as_store(dst)}, opts, reporter, id)
  end

  def copy(src, dst, opts, reporter, id) do
    started = System.monotonic_time(:microsecond)

    result =
      try do
        run(src, dst, opts, reporter, id)
      rescue
        e in Error -> {:error, e}
        e -> {:error, %Error{message: Exception.message(e)}}
      end

    case result do
      {:ok, bytes, digest} ->
        {:ok,
         %{bytes: bytes, digest: digest, micros: System.monotonic_time(:microsecond) - started}}

      {:error, %Error{} = e} ->
        {:error, "#{failed_side(src, dst)}: #{e.message}"}

      {:error, message} when is_binary(message) ->
        {:error, message}
    end
  end

  defp failed_side(src, dst),
    do: "#{CLI.Location.display(location(src))} -> #{CLI.Location.display(location(dst))}"

  defp location({:file, loc}), do: loc
  defp location({:object, _store, loc}), do: loc

  # file -> object
  defp run({:file, %{path: path}}, {:object, store, dst}, opts, reporter, id) do
    upload = upload_opts(opts) ++ progress(reporter, id)

    with {:ok, summary} <- ObjectStoreX.upload_file(store, key(dst), path, upload) do
      {:ok, summary.bytes, summary.digest}
    end
  end

  # object -> file
  defp run({:object, store, src}, {:file, %{path: path}}, opts, reporter, id) do
    File.mkdir_p(Path.dirname(path))
    # download_file/4 returns the object's metadata; the digest comes with its :on_complete.
    ref = make_ref()

    download =
      Enum.reject(
        [chunk_size: opts.part_size, concurrency: opts.concurrency, hash: opts.checksum],
        &nil_value?/1
      ) ++ progress(reporter, id) ++ [on_complete: &send(self(), {ref, &1.digest})]

    with {:ok, meta} <- ObjectStoreX.download_file(store, key(src), path, download) do
      receive do
        {^ref, digest} -> {:ok, meta.size, digest}
      end
    end
  end

  # object -> object
  defp run({:object, source, src}, {:object, store, dst}, opts, reporter, id) do
    # transfer/5 hashes by default; without --checksum there is no digest to show.
    copy = Keyword.put(upload_opts(opts), :hash, opts.checksum || false) ++ progress(reporter, id)

    with {:ok, summary} <- ObjectStoreX.transfer(source, key(src), store, key(dst), copy) do
      {:ok, summary.bytes, summary.digest}
    end
  end

  defp progress(nil, _id), do: []

  defp progress(reporter, id),
    do: [on_progress: fn p -> ProgressBar.update(reporter, id, p.bytes, p.total) end]

  defp key(loc), do: String.trim_leading(loc.key, "/")

  defp upload_opts(opts) do
    Enum.reject(
      [part_size: opts.part_size, max_concurrency: opts.concurrency, hash: opts.checksum],
      &nil_value?/1
    )
  end

  defp nil_value?({_, value}), do: is_nil(value)

  @doc "The one-line summary of a copy: sizes, duration, rate and, with --checksum, the digest."
  @spec summary_line(CLI.Location.t(), CLI.Location.t(), map(), opts()) :: String.t()
  def summary_line(src, dst, summary, opts) do
    digest =
      if opts.checksum && summary.digest, do: ", #{opts.checksum} #{summary.digest}", else: ""

    "copied #{CLI.Location.display(src)} -> #{CLI.Location.display(dst)}: #{summary.bytes} bytes " <>
      "(#{CLI.Format.bytes(summary.bytes)}) in #{CLI.Format.seconds(summary.micros)}, " <>
      "#{CLI.Format.rate(summary.bytes, summary.micros)}#{digest}"
  end
end
