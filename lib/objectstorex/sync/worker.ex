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
    copy(key, source, dest, config)
  end

  def process({:verify, key, size}, source, dest, config) do
    with {:ok, a} <- digest(source, join(config.prefix, key)),
         {:ok, b} <- digest(dest, join(config.dest_prefix, key)) do
      cond do
        a == b -> {:skipped, 0}
        config.dry_run -> {:copied, size}
        true -> copy(key, source, dest, config)
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

  defp copy(key, source, dest, config) do
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
