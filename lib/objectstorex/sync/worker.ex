defmodule ObjectStoreX.Sync.Worker do
  @moduledoc false
  # The workers of ObjectStoreX.Sync on one node: a pool process, started on that node, owns a
  # Task.Supervisor with `concurrency` workers. Each worker asks the coordinator for a batch,
  # copies or compares its objects one by one, reports each result, and asks again, so a faster
  # node takes more batches. The pool watches the coordinator and shuts its workers down when
  # the coordinator ends or its node becomes unreachable: a worker killed mid-copy aborts its
  # upload as every dropped transfer does.

  alias ObjectStoreX.{Error, Store}

  @doc """
  Starts the pool on the calling node (run there through `:erpc` for another node), with the
  stores rebuilt for this VM. Returns `{:ok, pool_pid}`.
  """
  @spec start(pid(), Store.t(), Store.t(), map()) :: {:ok, pid()} | {:error, Error.t()}
  def start(coordinator, source, dest, config) do
    with {:ok, source} <- side(Store.local(source), "source"),
         {:ok, dest} <- side(Store.local(dest), "destination") do
      pool = spawn(fn -> pool(coordinator, source, dest, config) end)
      {:ok, pool}
    end
  end

  defp side({:ok, store}, _what), do: {:ok, store}

  defp side({:error, %Error{} = e}, what),
    do: {:error, %Error{e | message: "node #{node()}: the #{what} store: #{e.message}"}}

  defp pool(coordinator, source, dest, config) do
    ref = Process.monitor(coordinator)
    {:ok, sup} = Task.Supervisor.start_link()

    for _ <- 1..config.concurrency do
      {:ok, _} =
        Task.Supervisor.start_child(sup, fn -> loop(coordinator, source, dest, config, nil) end)
    end

    receive do
      {:DOWN, ^ref, _, _, _} -> exit(:shutdown)
      :sync_stop -> exit(:shutdown)
    end
  end

  defp loop(coordinator, source, dest, config, finished) do
    config = Map.put(config, :coordinator, coordinator)
    send(coordinator, {:sync_want, self(), finished})

    receive do
      {:sync_batch, id, items, resumes} ->
        Enum.each(items, fn {_action, key, _size} = item ->
          started = System.monotonic_time()
          config = Map.put(config, :resume, Map.get(resumes, key))
          result = guarded(item, source, dest, config)
          send(coordinator, {:sync_result, id, key, result, System.monotonic_time() - started})
        end)

        loop(coordinator, source, dest, Map.delete(config, :resume), id)

      :sync_stop ->
        :ok
    end
  end

  # A bug must cost one object, not the worker (and with it a batch handed out again forever).
  defp guarded(item, source, dest, config) do
    process(item, source, dest, config)
  catch
    kind, reason ->
      {:failed, %Error{reason: :internal, message: Exception.format_banner(kind, reason)}}
  end

  @doc false
  # One object: `{:copied, bytes}`, `{:skipped, 0}` or `{:failed, %Error{}}`.
  def process({:copy, key, size}, source, dest, config) do
    record_start(key, size, source, dest, config)
    copy(key, size, source, dest, config)
  end

  def process({:verify, key, size}, source, dest, config) do
    with {:ok, a} <- digest(source, join(config.prefix, key)),
         {:ok, b} <- digest(dest, join(config.dest_prefix, key)) do
      cond do
        a == b -> {:skipped, 0}
        config.dry_run -> {:copied, size}
        true -> copy(key, size, source, dest, config)
      end
    else
      {:error, e} -> {:failed, e}
    end
  end

  # A copy in several parts to S3 can be continued after an interruption: its source version is
  # recorded first (a failed HEAD only means it cannot be).
  defp record_start(key, size, source, dest, config) do
    part_size =
      config.transfer[:part_size] || ObjectStoreX.Upload.defaults(dest.backend)[:part_size]

    with true <- dest.backend == :s3 and size > part_size and config[:coordinator] != nil,
         {:ok, %{etag: etag}} when is_binary(etag) <-
           ObjectStoreX.head(source, join(config.prefix, key)) do
      send(config.coordinator, {:sync_started, key, etag})
    end
  end

  defp copy(key, size, source, dest, config) do
    case ranged(key, size, source, dest, config) do
      {:ok, file, opts} -> download(source, join(config.prefix, key), file, opts)
      :none -> transfer(key, source, dest, config)
    end
  end

  # A large object from a network store to a local directory is read as rclone does, with
  # parallel ranged GETs (`:max_concurrency` ranges of `:part_size`, pinned to the object's
  # ETag) written at their offsets into a temporary file renamed into place: one streaming GET
  # is bound by a single connection. The ranges' sizes default to the source's upload defaults,
  # those of a store read over the network (a local destination's are for writing a disk).
  @network [:s3, :gcs, :azure, :http]

  defp ranged(key, size, source, dest, config) do
    defaults = ObjectStoreX.Upload.defaults(source.backend)
    chunk = config.transfer[:part_size] || defaults[:part_size]
    concurrency = config.transfer[:max_concurrency] || defaults[:max_concurrency]

    # A wrapped destination must see its calls (ObjectStoreX.Fault); a file name the local
    # store refuses (its own staging files, "name#N") is left to it to refuse.
    if dest.backend == :local and dest.fault == nil and source.backend in @network and
         size >= 2 * chunk and not staging_name?(key) do
      file = Path.join(Enum.reject([dest.root, dest.prefix, config.dest_prefix, key], &is_nil/1))
      {:ok, file, chunk_size: chunk, concurrency: concurrency}
    else
      :none
    end
  end

  defp staging_name?(key), do: Regex.match?(~r/#\d+$/, Path.basename(key))

  defp download(source, path, file, opts) do
    with :ok <- mkdir_p(Path.dirname(file)),
         {:ok, meta} <- ObjectStoreX.download_file(source, path, file, opts) do
      {:copied, meta.size}
    else
      {:error, %Error{} = e} -> {:failed, e}
    end
  end

  defp mkdir_p(dir) do
    case File.mkdir_p(dir) do
      :ok ->
        :ok

      {:error, reason} ->
        {:error,
         %Error{
           reason: :generic,
           message: "cannot create directory #{inspect(dir)}: #{:file.format_error(reason)}"
         }}
    end
  end

  defp transfer(key, source, dest, config) do
    transfer =
      if config[:resume], do: [{:resume, config.resume} | config.transfer], else: config.transfer

    case ObjectStoreX.transfer(
           source,
           join(config.prefix, key),
           dest,
           join(config.dest_prefix, key),
           transfer
         ) do
      {:ok, summary} -> {:copied, summary.bytes}
      {:error, e} -> {:failed, e}
    end
  end

  # The SHA-256 of an object, streamed: memory stays within the download's read-ahead.
  defp digest(store, path) do
    parent = self()
    ref = make_ref()

    ObjectStoreX.Stream.download(store, path,
      hash: :sha256,
      timeout: 120_000,
      on_complete: fn summary -> send(parent, {ref, summary.digest}) end
    )
    |> Stream.run()

    receive do
      {^ref, digest} -> {:ok, digest}
    after
      0 -> {:error, %Error{reason: :internal, message: "#{path}: no digest was computed"}}
    end
  rescue
    e in Error -> {:error, e}
  end

  @doc false
  def join(nil, key), do: key
  def join(prefix, key), do: prefix <> "/" <> key
end
