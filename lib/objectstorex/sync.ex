defmodule ObjectStoreX.Sync do
  @moduledoc """
  Resumable, verified bulk copy of every object under a prefix from one store to another, of
  any backends, optionally with workers on several nodes.

      {:ok, %ObjectStoreX.Sync.Report{copied: n, failed: []}} =
        ObjectStoreX.Sync.run(source, dest, prefix: "data/", checkpoint: "/var/tmp/data.ckpt")

  ## What it does

  The source and destination are listed at the same time, each in key order, and merged: an object
  missing at the destination, or different from it (see `:compare`), is copied with
  `ObjectStoreX.transfer/5`, which checks the byte count before completing the upload and
  aborts it otherwise. A second identical run copies nothing. One object failing never stops
  the others: it is reported in `:failed`. `{:error, _}` means the run itself could not go on
  (a listing failed, a checkpoint is unreadable, every node went down); what was already copied
  stays copied.

  With `delete: true`, destination objects whose key the source does not have are deleted, but
  only after the whole source listing completed without error: a listing that fails part way
  deletes nothing.

  ## Memory

  Bounded whatever the number of objects:

    * The source and the destination are each listed in a process of their own, at the same
      time, ahead of the merge by a bounded amount: each side holds at most 3,000 listed
      entries (chunks of 1,000, one page of an S3 listing: the one being merged, one ready and
      one being filled); a listing waits while its next chunk is not yet wanted.
    * S3, GCS, Azure and memory stores list in key order: their listings stream, one page at a
      time.
    * Local and HTTP/WebDAV stores do not list in key order (the filesystem lists in directory
      order): they are walked depth first, one `"/"`-delimited listing per directory, each
      directory's entries sorted. The next 8 directories to visit are listed concurrently
      while the walk is still before them, so memory holds the listings of the directories on
      the current path and of at most 8 directories listed ahead at each of its levels, not
      the tree's.
    * Work is handed to the workers in batches of `:batch_size` objects, at most two batches
      queued per worker; the listing waits while the queue is full.
    * The keys to delete are spilled to a temporary file until the source listing has
      completed.
    * With `:checkpoint`, the keys completed out of order ahead of the oldest unfinished batch,
      and the keys that failed, are kept; the file itself grows by one line per object.

  ## Checkpoints

  With `checkpoint: path`, progress is appended to a local file as it happens: each object done
  or failed, and marks up to which every key is done. A torn last line (the run was killed while
  writing it) is ignored. A run interrupted in any way (killed, its node down, a listing
  failed) is resumed by a run with the same file: it skips, without comparing them again, the
  objects the interrupted run completed, and does the rest. A run that completes says so in
  the file, and the next run with it starts afresh (so objects added to the source since are
  seen, whatever their key). The file records which stores and prefixes it belongs to: another
  sync refuses it, as it refuses a corrupt or unreadable file, with an error naming it. A
  `dry_run` reads the checkpoint but never writes it.

  A large object whose copy was interrupted resumes from its last complete multipart part on
  S3: when a multipart copy begins, the source's ETag is recorded in the checkpoint, and the
  next run passes it to `ObjectStoreX.transfer/5` as `:resume` (with the same `:part_size`).
  If the source changed meanwhile, the interrupted upload is aborted and the object copied
  from its start. Other destinations copy such an object again from its start.

  ## Several nodes

  With `nodes: [...]` (connected nodes; `node()` may be among them), a pool of `:concurrency`
  workers runs on each node and pulls batches from the process that called `run/3`, so a faster
  node takes more. Batches go to the nodes in turn, among those with a worker waiting, so the
  first ones (all the workers are waiting then) spread over the nodes. Each node rebuilds the stores from the arguments they were made with (they
  travel inside the `%ObjectStoreX.Store{}`, over the distribution connection only, and never
  appear in `inspect/2`, reports, telemetry or logs). So the nodes need the same ObjectStoreX,
  a `:local` store means the same path on every node (a shared filesystem), options left to the
  environment (`from_env`) are read from each node's environment, and a `:memory` store cannot
  be used with other nodes. When a node goes down, its unfinished batches go back to the queue
  for the others. The multipart uploads that node had begun are aborted at the end of the run
  on S3 (found by listing the in-progress uploads of the keys it was copying); on Azure its
  uncommitted blocks are never part of an object and the service discards them within a week;
  a local store's staging file of a node that went down is left in place.

  ## Telemetry

  `:start`, `:stop` and `:exception` are emitted in the process that calls `run/3`; `:object`
  in the run's coordinating process, on the calling node, whichever node did the work (see
  `ObjectStoreX.Telemetry`):

    * `[:objectstorex, :sync, :start]` - measurements `%{system_time: integer}`, metadata
      `%{source_backend:, dest_backend:, prefix:, dest_prefix:, dry_run:, nodes:}`
    * `[:objectstorex, :sync, :stop]` - measurements `%{duration:, listed:, copied:, skipped:,
      deleted:, failed:, bytes:}`, metadata as above
    * `[:objectstorex, :sync, :exception]` - measurements `%{duration:}`, metadata as above
      plus `:kind` and `:reason` (the `ObjectStoreX.Error` reason when the run returned an
      error)
    * `[:objectstorex, :sync, :object]` - one per object copied, skipped, deleted or failed:
      measurements `%{bytes:, duration:}`, metadata `%{key:, action: :copied | :skipped |
      :deleted | :failed, node:, reason:}` (`reason` is the error reason of a failure, or
      `:checkpoint` for an object skipped because an earlier run completed it)

  Each copy also emits the upload events of `ObjectStoreX.transfer/5` on the node that runs it.
  """

  alias ObjectStoreX.{Args, Error, Store, Telemetry}
  alias ObjectStoreX.Sync.{Checkpoint, Listing, Report, Worker}

  @defaults [
    prefix: nil,
    dest_prefix: nil,
    delete: false,
    dry_run: false,
    compare: :size_mtime,
    concurrency: 4,
    part_size: nil,
    max_concurrency: nil,
    checkpoint: nil,
    nodes: nil,
    on_progress: nil,
    batch_size: 16,
    listing: :flat
  ]

  @max_batch 10_000
  # A batch also ends once it holds this much to copy: large objects go to different workers
  # instead of queueing behind one another in one worker's batch.
  @batch_bytes 8 * 1_048_576
  @delete_batch 1_000
  # Entries of a batch in all (see batch_item/4).
  @batch_entries 1_000
  @progress_interval_us 100_000

  @doc """
  Makes the destination hold every object under the source prefix, byte for byte. Returns
  `{:ok, %ObjectStoreX.Sync.Report{}}`, or `{:error, %ObjectStoreX.Error{}}` when the run could
  not proceed.

  ## Options

    * `:prefix` - sync the objects under this prefix of the source (default: all)
    * `:dest_prefix` - put them under this prefix of the destination, at the same relative
      keys (default: the same relative keys under the destination's root)
    * `:delete` - also delete destination objects under `:dest_prefix` that the source does not
      have (default `false`); never when the source listing did not complete. Refused when the
      source and destination are the same store with overlapping prefixes
    * `:dry_run` - list, compare and report what would be done; change nothing (default
      `false`)
    * `:compare` - `:size_mtime` (default): an object is up to date when the sizes match and
      the destination is not older than the source, to the second (S3 and Azure keep no
      finer dates); `:checksum`: when the sizes match and the
      SHA-256 of both sides (each streamed) match
    * `:concurrency` - objects in flight per node, default 4, at most 1_000
    * `:part_size`, `:max_concurrency` - passed to each `ObjectStoreX.transfer/5`
    * `:checkpoint` - a local file recording progress, to resume an interrupted run (see
      "Checkpoints")
    * `:nodes` - connected nodes to run workers on, default `[node()]` (see "Several nodes")
    * `:on_progress` - `fn %{listed:, copied:, skipped:, failed:, bytes:} -> any end`, called
      in a process of the run at most every 100 ms, and once at the end; an exception it
      raises ends the run and is re-raised by `run/3`
    * `:batch_size` - objects to copy per batch handed to a worker, default 16, at most
      10_000; a batch also ends once it holds 8 MiB to copy, so that large objects are copied
      by different workers at once, or 1,000 objects in all (those skipped are only counted)
    * `:listing` - how S3, GCS, Azure and memory stores are listed: `:flat` (default), one
      paginated listing of the whole prefix, streamed; or `:tree`, one `"/"`-delimited
      listing per directory, walked depth first as local and HTTP stores always are (up to 8
      directories listed at once, see "Memory"). `:tree` costs at least one request per
      directory and holds the listings of the directories on the current path and of those
      listed ahead, but where a server's cost of each page grows with the whole prefix
      (s3s-fs walks and sorts every key under the prefix for each page of 1,000) it reads far
      less; rclone lists so by default. `:flat` stays the default because its cost does not
      depend on how the keys are laid out: on S3 itself, GCS and Azure it is one request per
      1,000 keys, where `:tree` needs a request per directory, many times more for keys spread
      over many small directories (date partitions, one object per directory); and which
      of the two a server answers faster cannot be told from the store's configuration
  """
  @spec run(Store.t(), Store.t(), keyword()) :: {:ok, Report.t()} | {:error, Error.t()}
  def run(source, dest, opts \\ []) do
    with {:ok, _} <- Args.store(source),
         {:ok, _} <- Args.store(dest),
         {:ok, opts} <- Args.opts(opts, Keyword.keys(@defaults), @defaults),
         {:ok, ctx} <- context(source, dest, opts) do
      execute(ctx)
    end
  end

  @doc """
  Like `run/3`, but returns the report or raises `ObjectStoreX.Error`.

  ## Options

  The same as `run/3`.
  """
  @spec run!(Store.t(), Store.t(), keyword()) :: Report.t()
  def run!(source, dest, opts \\ []) do
    case run(source, dest, opts) do
      {:ok, report} -> report
      {:error, error} -> raise error
    end
  end

  # ---------------------------------------------------------------------------------------------
  # Options

  defp context(source, dest, opts) do
    with {:ok, prefix} <- prefix(":prefix", opts.prefix),
         {:ok, dest_prefix} <- prefix(":dest_prefix", opts.dest_prefix),
         {:ok, delete} <- Args.boolean(":delete", opts.delete),
         {:ok, dry_run} <- Args.boolean(":dry_run", opts.dry_run),
         :ok <- compare(opts.compare),
         :ok <- Args.positive_integers(opts, [:concurrency]),
         :ok <- batch_size(opts.batch_size),
         :ok <- listing(opts.listing),
         {:ok, transfer} <- transfer_opts(dest, opts),
         {:ok, checkpoint} <- checkpoint(opts.checkpoint),
         {:ok, nodes} <- nodes(opts.nodes),
         :ok <- portable(source, dest, nodes),
         :ok <- Args.optional_fun(opts, :on_progress, 1),
         :ok <- overlap(source, prefix, dest, dest_prefix, delete) do
      {:ok,
       %{
         source: source,
         dest: dest,
         prefix: prefix,
         dest_prefix: dest_prefix,
         delete: delete,
         dry_run: dry_run,
         compare: opts.compare,
         concurrency: opts.concurrency,
         batch_size: opts.batch_size,
         listing: opts.listing,
         transfer: transfer,
         checkpoint: checkpoint,
         nodes: nodes,
         on_progress: opts.on_progress
       }}
    end
  end

  defp prefix(name, value) do
    with {:ok, value} <- Args.optional_path(name, value) do
      case value && String.trim(value, "/") do
        "" -> {:ok, nil}
        other -> {:ok, other}
      end
    end
  end

  defp compare(mode) when mode in [:size_mtime, :checksum], do: :ok

  defp compare(other),
    do: Error.invalid(":compare must be :size_mtime or :checksum, got: #{Args.brief(other)}")

  defp listing(mode) when mode in [:flat, :tree], do: :ok

  defp listing(other),
    do: Error.invalid(":listing must be :flat or :tree, got: #{Args.brief(other)}")

  defp batch_size(n) when is_integer(n) and n > 0 and n <= @max_batch, do: :ok

  defp batch_size(n) when is_integer(n) and n > @max_batch,
    do: Args.too_large(":batch_size", n, @max_batch)

  defp batch_size(other),
    do: Error.invalid(":batch_size must be a positive integer, got: #{Args.brief(other)}")

  # Checked once here, by the validation each transfer would do.
  defp transfer_opts(dest, opts) do
    transfer =
      [part_size: opts.part_size, max_concurrency: opts.max_concurrency, hash: false]
      |> Enum.reject(fn {_, v} -> is_nil(v) end)

    with {:ok, _, _, _, _} <- ObjectStoreX.Upload.validate(dest, "probe", transfer),
         do: {:ok, transfer}
  end

  defp checkpoint(nil), do: {:ok, nil}

  defp checkpoint(path) when is_binary(path) and path != "" do
    with {:ok, path} <- Args.utf8(":checkpoint", path), do: {:ok, Path.expand(path)}
  end

  defp checkpoint(other),
    do: Error.invalid(":checkpoint must be a file path, got: #{Args.brief(other)}")

  defp nodes(nil), do: {:ok, [node()]}

  defp nodes(nodes) when is_list(nodes) and nodes != [] do
    if Args.proper_list?(nodes) and Enum.all?(nodes, &is_atom/1) do
      case Enum.reject(nodes, &(&1 == node() or &1 in Node.list())) do
        [] ->
          {:ok, Enum.uniq(nodes)}

        missing ->
          Error.invalid(
            ":nodes must be connected nodes; not connected: " <>
              Enum.map_join(missing, ", ", &inspect/1)
          )
      end
    else
      Error.invalid(":nodes must be a non-empty list of node names, got: #{Args.brief(nodes)}")
    end
  end

  defp nodes(other),
    do: Error.invalid(":nodes must be a non-empty list of node names, got: #{Args.brief(other)}")

  defp portable(source, dest, nodes) do
    if nodes != [node()] and Enum.any?([source, dest], &(&1.backend == :memory)),
      do:
        Error.invalid(
          ":nodes other than this one need stores they can rebuild; a :memory store lives " <>
            "only in this VM"
        ),
      else: :ok
  end

  # The same store with one prefix inside (or equal to) the other: deleting would remove what
  # is being copied, and copying into the source would list the copies again.
  defp overlap(source, prefix, dest, dest_prefix, delete) do
    a = full_prefix(source.prefix, prefix)
    b = full_prefix(dest.prefix, dest_prefix)

    same_store = Store.identity(%{source | prefix: nil}) == Store.identity(%{dest | prefix: nil})
    nested = a != b and (within?(a, b) or within?(b, a))

    cond do
      not same_store -> :ok
      delete and (a == b or nested) -> overlap_error(a, b, "with :delete")
      nested -> overlap_error(a, b, "")
      true -> :ok
    end
  end

  defp overlap_error(a, b, why) do
    Error.invalid(
      ("the source (#{shown_prefix(a)}) and destination (#{shown_prefix(b)}) are the same " <>
         "store with overlapping prefixes; refusing to sync #{why}")
      |> String.trim_trailing()
    )
  end

  defp shown_prefix(""), do: "its root"
  defp shown_prefix(p), do: "prefix #{inspect(p)}"

  defp full_prefix(nil, nil), do: ""
  defp full_prefix(a, nil), do: a
  defp full_prefix(nil, b), do: b
  defp full_prefix(a, b), do: a <> "/" <> b

  defp within?(_inner, ""), do: true
  defp within?(inner, outer), do: String.starts_with?(inner, outer <> "/")

  # ---------------------------------------------------------------------------------------------
  # The run

  defp execute(ctx) do
    metadata = %{
      source_backend: ctx.source.backend,
      dest_backend: ctx.dest.backend,
      prefix: ctx.prefix,
      dest_prefix: ctx.dest_prefix,
      dry_run: ctx.dry_run,
      nodes: ctx.nodes
    }

    span = Telemetry.span_start([:objectstorex, :sync], metadata)
    caller = self()
    task = Task.async(fn -> guarded(ctx, caller) end)

    case Task.await(task, :infinity) do
      {:ok, %Report{} = report} ->
        Telemetry.span_stop(
          span,
          %{
            listed: report.listed,
            copied: report.copied,
            skipped: report.skipped,
            deleted: report.deleted,
            failed: length(report.failed),
            bytes: report.bytes
          },
          %{}
        )

        {:ok, report}

      {:error, %Error{} = e} ->
        Telemetry.span_exception(span, %{}, %{kind: :error, reason: e.reason})
        {:error, e}

      {:raised, kind, reason, stack} ->
        Telemetry.span_exception(span, %{}, %{kind: kind, reason: reason, stacktrace: stack})
        :erlang.raise(kind, reason, stack)
    end
  end

  defp guarded(ctx, caller) do
    coordinate(ctx, caller)
  catch
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  defp coordinate(ctx, caller) do
    started = System.monotonic_time(:microsecond)

    with {:ok, ck_state, ck_io} <- open_checkpoint(ctx) do
      try do
        with {:ok, pools} <- start_pools(ctx) do
          spill = if ctx.delete, do: spill_path(), else: nil
          producer = start_producer(ctx, ck_state, spill)

          try do
            state = %{
              ctx: ctx,
              caller: caller,
              ck: ck_io,
              producer: producer,
              producer_waiting: false,
              listed: :running,
              spill: nil,
              queue: :queue.new(),
              batches: %{},
              next_id: 0,
              unfinished: :gb_sets.new(),
              lasts: %{},
              marked: -1,
              workers: %{},
              # Idle workers by node, and the nodes in the order they are next handed work.
              idle: %{},
              turn: ctx.nodes,
              pools: pools,
              qmax: 2 * ctx.concurrency * length(Map.keys(pools)),
              report: %Report{dry_run: ctx.dry_run},
              # Keys whose copy may have been in progress on a node that went down, and when
              # the run began: their uploads are looked for and aborted at the end.
              orphans: MapSet.new(),
              since_ms: System.os_time(:millisecond),
              # Multipart copies an interrupted run began: key => the source's ETag then.
              started: ck_state.started,
              last_progress: nil,
              last_sync: System.monotonic_time(:microsecond)
            }

            state
            |> loop()
            |> finish(started)
          after
            stop_producer(producer)
            stop_pools(pools)
            if spill, do: File.rm(spill)
          end
        end
      after
        Checkpoint.close(ck_io)
      end
    end
  end

  defp open_checkpoint(%{checkpoint: nil}), do: {:ok, %Checkpoint{}, nil}

  defp open_checkpoint(%{checkpoint: path, dry_run: true} = ctx) do
    with {:ok, state} <- Checkpoint.read(path, fingerprint(ctx)), do: {:ok, state, nil}
  end

  defp open_checkpoint(%{checkpoint: path} = ctx), do: Checkpoint.open(path, fingerprint(ctx))

  # Which sync a checkpoint belongs to, from what inspect/2 shows of the stores (no credentials).
  defp fingerprint(ctx) do
    text =
      Enum.map_join(
        [
          Store.identity(ctx.source),
          ctx.prefix,
          Store.identity(ctx.dest),
          ctx.dest_prefix
        ],
        "\n",
        &identity_text/1
      )

    :crypto.hash(:sha256, text) |> Base.encode16(case: :lower) |> binary_part(0, 32)
  end

  # A memory store's identity is a reference, different in every VM; its backend is enough.
  defp identity_text({:memory, _ref}), do: "memory"
  defp identity_text(term), do: inspect(term, limit: :infinity)

  defp start_pools(ctx) do
    config = %{
      prefix: ctx.prefix,
      dest_prefix: ctx.dest_prefix,
      dry_run: ctx.dry_run,
      transfer: ctx.transfer,
      concurrency: ctx.concurrency
    }

    Enum.reduce_while(ctx.nodes, {:ok, %{}}, fn node, {:ok, pools} ->
      case start_pool(node, ctx, config) do
        {:ok, pid} ->
          Process.monitor(pid)
          if node != node(), do: Node.monitor(node, true)
          {:cont, {:ok, Map.put(pools, pid, node)}}

        {:error, e} ->
          stop_pools(pools)
          {:halt, {:error, e}}
      end
    end)
  end

  defp start_pool(node, ctx, config) when node == node(),
    do: Worker.start(self(), ctx.source, ctx.dest, config)

  defp start_pool(node, ctx, config) do
    with {:ok, _} <- :erpc.call(node, Application, :ensure_all_started, [:objectstorex], 60_000) do
      :erpc.call(node, Worker, :start, [self(), ctx.source, ctx.dest, config], 60_000)
    end
  catch
    kind, reason ->
      {:error,
       %Error{
         reason: :network_error,
         message:
           "cannot start the sync's workers on node #{inspect(node)}: " <>
             Exception.format_banner(kind, reason)
       }}
  else
    {:ok, pid} ->
      {:ok, pid}

    {:error, %Error{}} = error ->
      error

    {:error, other} ->
      {:error,
       %Error{
         reason: :configuration,
         message:
           "cannot start :objectstorex on node #{inspect(node)}: #{inspect(other, limit: 5)}"
       }}
  end

  defp stop_pools(pools), do: Enum.each(Map.keys(pools), &send(&1, :sync_stop))

  # ---------------------------------------------------------------------------------------------
  # The listing: source and destination merged, classified and cut into batches, sent to the
  # coordinator one at a time, each waiting for its acknowledgement (the queue's bound).

  defp start_producer(ctx, ck_state, spill) do
    coordinator = self()
    spawn_link(fn -> produce(coordinator, ctx, ck_state, spill) end)
  end

  # A run that ends early (every node down, :on_progress raising) leaves the listing waiting
  # for an acknowledgement: end it, which cancels the native listing.
  defp stop_producer(producer) do
    Process.unlink(producer)
    ref = Process.monitor(producer)
    Process.exit(producer, :kill)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    end

    receive do
      {:sync_listed, ^producer, _result, _spill} -> :ok
    after
      0 -> :ok
    end
  end

  defp produce(coordinator, ctx, ck_state, spill_path) do
    spill = spill_path && open_spill(spill_path)

    result =
      try do
        # Each side listed in a process of its own, ahead of the merge (Listing.merge_ahead/2):
        # the two listings overlap instead of taking turns. The merge hands over lists, and
        # each is classified and cut into batches by plain recursion: a re-sync that copies
        # nothing spends its time here, once per object.
        source = Listing.chunks(ctx.source, ctx.prefix, "source", ctx.listing)
        dest = Listing.chunks(ctx.dest, ctx.dest_prefix, "destination", ctx.listing)

        batch =
          Listing.merge_ahead(source, dest)
          |> Enum.reduce({0, 0, 0, []}, fn merged, batch ->
            Enum.reduce(merged, batch, fn entry, batch ->
              entry
              |> classify(ctx, ck_state, spill)
              |> batch_item(batch, ctx.batch_size, coordinator)
            end)
          end)

        with {_, _, _, [_ | _] = items} <- batch, do: send_batch(coordinator, items)
        :ok
      catch
        {:listing_failed, side, %Error{} = e} -> {:error, side, e}
      end

    spill_info = spill && close_spill(spill)
    send(coordinator, {:sync_listed, self(), result, spill_info})
  end

  defp classify({:dest, key, _meta}, _ctx, _ck, spill) do
    if spill, do: write_spill(spill, key)
    nil
  end

  defp classify({:source, key, meta}, _ctx, ck, _spill) do
    if Checkpoint.done?(ck, key), do: {:done, key, meta.size}, else: {:copy, key, meta.size}
  end

  defp classify({:both, key, src, dst}, ctx, ck, _spill) do
    cond do
      Checkpoint.done?(ck, key) -> {:done, key, src.size}
      src.size != dst.size -> {:copy, key, src.size}
      ctx.compare == :checksum -> {:verify, key, src.size}
      older?(dst.last_modified, src.last_modified) -> {:copy, key, src.size}
      true -> {:skip, key, src.size}
    end
  end

  # A batch ends at `max` objects to copy or verify, or 8 MiB of them, or @batch_entries
  # entries in all: objects skipped (or done by a checkpoint) only need counting by the
  # coordinator, so a re-sync that copies nothing sends a message per 1,000 objects, not per
  # `max`.
  defp batch_item(nil, batch, _max, _coordinator), do: batch

  defp batch_item({action, _key, size} = item, {work, total, bytes, acc}, max, coordinator) do
    {work, bytes} =
      if action in [:copy, :verify], do: {work + 1, bytes + size}, else: {work, bytes}

    if work >= max or bytes >= @batch_bytes or total + 1 >= @batch_entries do
      send_batch(coordinator, [item | acc])
      {0, 0, 0, []}
    else
      {work, total + 1, bytes, [item | acc]}
    end
  end

  # One batch at a time, each waiting for its acknowledgement (the queue's bound).
  defp send_batch(coordinator, reversed) do
    send(coordinator, {:sync_items, self(), Enum.reverse(reversed)})

    receive do
      :sync_ack -> :ok
    end
  end

  defp spill_path do
    Path.join(
      System.tmp_dir!(),
      "objectstorex-sync-#{System.os_time(:millisecond)}-#{System.unique_integer([:positive])}.keys"
    )
  end

  # To the second: S3 and Azure keep no finer dates, so a copy made in the same second as its
  # source would otherwise look older than it for ever.
  # Every `Meta` date is built in UTC, and then comparing the fields in order is comparing the
  # instants, several times cheaper than `DateTime.compare/2` on each object of a re-sync.
  defp older?(
         %DateTime{utc_offset: 0, std_offset: 0} = a,
         %DateTime{utc_offset: 0, std_offset: 0} = b
       ),
       do: seconds(a) < seconds(b)

  defp older?(a, b),
    do: DateTime.compare(DateTime.truncate(a, :second), DateTime.truncate(b, :second)) == :lt

  defp seconds(%DateTime{year: y, month: mo, day: d, hour: h, minute: mi, second: s}),
    do: {y, mo, d, h, mi, s}

  defp open_spill(path) do
    {:ok, io} = :file.open(path, [:write, :binary, :raw, {:delayed_write, 65_536, 1_000}])
    {path, io, :counters.new(1, [])}
  end

  defp write_spill({_path, io, count}, key) do
    :ok = :file.write(io, [URI.encode(key, &URI.char_unreserved?/1), "\n"])
    :counters.add(count, 1, 1)
  end

  defp close_spill({path, io, count}) do
    :ok = :file.close(io)
    {path, :counters.get(count, 1)}
  end

  # ---------------------------------------------------------------------------------------------
  # The coordinator's loop

  defp loop(state) do
    producer = state.producer

    if finished?(state) do
      state
    else
      receive do
        {:sync_items, ^producer, items} ->
          %{state | producer_waiting: true}
          |> add_items(items)
          |> dispatch()
          |> ack()
          |> loop()

        {:sync_listed, ^producer, result, spill} ->
          state = %{state | listed: result, spill: spill}

          state =
            if match?({:error, _, _}, result),
              do: drop_queued(state),
              else: state

          state |> progress(false) |> loop()

        {:sync_want, worker, finished} ->
          state |> want(worker, finished) |> dispatch() |> ack() |> loop()

        {:sync_result, id, key, result, duration} ->
          state |> result(id, key, result, duration) |> progress(false) |> loop()

        # A worker begins a multipart copy: should the run be interrupted, the next run with
        # the checkpoint continues its upload (see `ObjectStoreX.transfer/5`'s `:resume`).
        {:sync_started, key, etag} ->
          Checkpoint.write(state.ck, :started, {key, etag})
          loop(state)

        {:DOWN, _ref, :process, pid, reason} ->
          state |> down(pid, reason) |> check_workers() |> dispatch() |> loop()

        {:nodedown, node} ->
          state |> node_down(node) |> check_workers() |> dispatch() |> loop()
      end
    end
  end

  defp finished?(%{abort: _}), do: true
  defp finished?(%{listed: :running}), do: false
  defp finished?(%{batches: batches}), do: map_size(batches) == 0

  defp add_items(state, items) do
    id = state.next_id
    {_, last_key, _} = List.last(items)

    report = %{state.report | listed: state.report.listed + length(items)}
    state = %{state | report: report, next_id: id + 1}

    {work, state} =
      Enum.reduce(items, {[], state}, fn
        {:done, key, _size}, {work, st} ->
          {work, count(st, key, :skipped, 0, 0, node(), :checkpoint)}

        {:skip, key, _size}, {work, st} ->
          {work, count(st, key, :skipped, 0, 0, node(), nil)}

        {:copy, key, size}, {work, %{ctx: %{dry_run: true}} = st} ->
          {work, count(st, key, :copied, size, 0, node(), nil)}

        item, {work, st} ->
          {[item | work], st}
      end)

    state = %{
      state
      | unfinished: :gb_sets.add(id, state.unfinished),
        lasts: Map.put(state.lasts, id, last_key)
    }

    case work do
      [] ->
        finish_batch(state, id)

      work ->
        batch = %{items: Map.new(Enum.reverse(work), &{elem(&1, 1), &1}), worker: nil}

        %{
          state
          | batches: Map.put(state.batches, id, batch),
            queue: :queue.in(id, state.queue)
        }
    end
  end

  # Hands queued batches to idle workers, one node after another (round-robin): else the first
  # batches, which may hold a run's large objects, would all go to the node whose workers
  # happened to ask last.
  defp dispatch(state) do
    with false <- :queue.is_empty(state.queue),
         {:ok, worker, state} <- take_idle(state) do
      {{:value, id}, queue} = :queue.out(state.queue)
      batch = state.batches[id]
      resumes = Map.take(state.started, Map.keys(batch.items))
      send(worker, {:sync_batch, id, batch_items(batch), resumes})

      state = %{
        state
        | queue: queue,
          batches: Map.put(state.batches, id, %{batch | worker: worker})
      }

      dispatch(state)
    else
      _ -> state
    end
  end

  # An idle worker of the first node in turn that has one; that node goes last in turn.
  defp take_idle(state) do
    case Enum.split_while(state.turn, &(Map.get(state.idle, &1, []) == [])) do
      {_, []} ->
        :none

      {before, [node | rest]} ->
        [worker | others] = Map.fetch!(state.idle, node)
        state = %{state | idle: Map.put(state.idle, node, others), turn: before ++ rest ++ [node]}
        {:ok, worker, state}
    end
  end

  # In key order: the map's order is not.
  defp batch_items(batch), do: batch.items |> Map.values() |> Enum.sort_by(&elem(&1, 1))

  defp ack(%{producer_waiting: true} = state) do
    if :queue.len(state.queue) < state.qmax do
      send(state.producer, :sync_ack)
      %{state | producer_waiting: false}
    else
      state
    end
  end

  defp ack(state), do: state

  defp want(state, worker, finished) do
    state =
      if Map.has_key?(state.workers, worker) do
        state
      else
        Process.monitor(worker)
        %{state | workers: Map.put(state.workers, worker, node(worker))}
      end

    state =
      case finished && state.batches[finished] do
        %{worker: ^worker, items: items} when map_size(items) == 0 ->
          finish_batch(%{state | batches: Map.delete(state.batches, finished)}, finished)

        %{worker: ^worker} = batch ->
          # Results that never arrived: do the rest again elsewhere.
          requeue(state, finished, batch)

        _ ->
          state
      end

    # Stop the worker when nothing is left; else it waits for work (some may come back from a
    # node that goes down).
    if state.listed != :running and map_size(state.batches) == 0 do
      send(worker, :sync_stop)
      state
    else
      %{state | idle: Map.update(state.idle, node(worker), [worker], &[worker | &1])}
    end
  end

  defp requeue(state, id, batch) do
    %{
      state
      | batches: Map.put(state.batches, id, %{batch | worker: nil}),
        queue: :queue.in_r(id, state.queue)
    }
  end

  defp result(state, id, key, result, duration) do
    case state.batches[id] do
      %{items: %{^key => _}} = batch ->
        batch = %{batch | items: Map.delete(batch.items, key)}
        state = %{state | batches: Map.put(state.batches, id, batch)}
        worker_node = if batch.worker, do: node(batch.worker), else: node()

        case result do
          {:copied, bytes} ->
            Checkpoint.write(state.ck, :done, key)
            count(state, key, :copied, bytes, duration, worker_node, nil)

          {:skipped, _} ->
            Checkpoint.write(state.ck, :done, key)
            count(state, key, :skipped, 0, duration, worker_node, nil)

          {:failed, %Error{} = e} ->
            Checkpoint.write(state.ck, :failed, key)
            state = count(state, key, :failed, 0, duration, worker_node, e.reason)
            %{state | report: %{state.report | failed: [{key, e} | state.report.failed]}}
        end

      _ ->
        # A late answer for an object already done again elsewhere.
        state
    end
  end

  defp count(state, key, action, bytes, duration, node, reason) do
    Telemetry.execute(
      [:objectstorex, :sync, :object],
      %{bytes: bytes, duration: duration},
      %{key: key, action: action, node: node, reason: reason}
    )

    report = state.report

    report =
      case action do
        :copied -> %{report | copied: report.copied + 1, bytes: report.bytes + bytes}
        :skipped -> %{report | skipped: report.skipped + 1}
        :deleted -> %{report | deleted: report.deleted + 1}
        :failed -> report
      end

    %{state | report: report}
  end

  # A batch whose every object is done or failed: move the mark past every finished batch
  # that no unfinished one precedes.
  defp finish_batch(state, id) do
    unfinished = :gb_sets.delete_any(id, state.unfinished)

    upto =
      if :gb_sets.is_empty(unfinished),
        do: state.next_id - 1,
        else: :gb_sets.smallest(unfinished) - 1

    state = %{state | unfinished: unfinished}

    if upto > state.marked do
      key = Map.fetch!(state.lasts, upto)
      Checkpoint.write(state.ck, :mark, key)
      lasts = Map.reject(state.lasts, fn {i, _} -> i <= upto end)
      maybe_sync(%{state | marked: upto, lasts: lasts})
    else
      state
    end
  end

  defp maybe_sync(state) do
    now = System.monotonic_time(:microsecond)

    if now - state.last_sync >= 1_000_000 do
      Checkpoint.sync(state.ck)
      %{state | last_sync: now}
    else
      state
    end
  end

  defp down(state, pid, _reason) do
    cond do
      Map.has_key?(state.workers, pid) ->
        lost(%{state | workers: Map.delete(state.workers, pid)}, [pid])

      Map.has_key?(state.pools, pid) ->
        %{state | pools: Map.delete(state.pools, pid)}

      true ->
        state
    end
  end

  defp node_down(state, node) do
    gone = for {pid, ^node} <- state.workers, do: pid
    pools = Map.reject(state.pools, fn {_, n} -> n == node end)

    # A worker that dies with its node cannot abort the upload it had begun, as one that dies
    # alone does (its upload's owner goes down): remember which keys it may have been copying.
    orphans =
      Enum.reduce(state.batches, state.orphans, fn
        {_id, %{worker: w, items: items}}, acc when w != nil ->
          if w in gone, do: Enum.into(Map.keys(items), acc), else: acc

        _, acc ->
          acc
      end)

    state = %{state | workers: Map.drop(state.workers, gone), pools: pools, orphans: orphans}
    lost(state, gone)
  end

  # Workers that are gone: their batches go back to the front of the queue.
  defp lost(state, gone) do
    state = %{state | idle: Map.new(state.idle, fn {node, idle} -> {node, idle -- gone} end)}

    Enum.reduce(state.batches, state, fn
      {id, %{worker: w} = batch}, st when w != nil ->
        if w in gone, do: requeue(st, id, batch), else: st

      _, st ->
        st
    end)
  end

  defp check_workers(state) do
    if map_size(state.pools) == 0 and map_size(state.batches) > 0 do
      Map.put(state, :abort, %Error{
        reason: :network_error,
        message: "every node running the sync's workers went down: #{inspect(state.ctx.nodes)}"
      })
    else
      state
    end
  end

  # After a failed listing no new work starts; what is running finishes.
  defp drop_queued(state) do
    queued = :queue.to_list(state.queue)
    %{state | queue: :queue.new(), batches: Map.drop(state.batches, queued)}
  end

  defp progress(%{ctx: %{on_progress: nil}} = state, _final), do: state

  defp progress(state, final) do
    now = System.monotonic_time(:microsecond)

    if final or state.last_progress == nil or now - state.last_progress >= @progress_interval_us do
      r = state.report

      state.ctx.on_progress.(%{
        listed: r.listed,
        copied: r.copied,
        skipped: r.skipped,
        failed: length(r.failed),
        bytes: r.bytes
      })

      %{state | last_progress: now}
    else
      state
    end
  end

  # ---------------------------------------------------------------------------------------------
  # The end

  defp finish(state, started) do
    state =
      case {state[:abort], state.listed} do
        {nil, :ok} -> delete_extras(state)
        _ -> state
      end

    state = abort_orphans(state)

    Checkpoint.sync(state.ck)
    state = progress(state, true)
    report = %{state.report | failed: Enum.reverse(state.report.failed)}
    report = %{report | duration_us: System.monotonic_time(:microsecond) - started}

    case {state[:abort], state.listed} do
      {%Error{} = e, _} ->
        {:error, e}

      {nil, {:error, side, %Error{} = e}} ->
        {:error,
         %Error{
           e
           | message:
               "listing the #{side} failed after #{report.listed} objects " <>
                 "(#{report.copied} copied; nothing deleted): #{e.message}"
         }}

      {nil, :ok} ->
        Checkpoint.write(state.ck, :end, "-")
        {:ok, report}
    end
  end

  # Every worker has stopped by now, so an upload of these keys still in progress since the run
  # began was left by a node that went down. Only stores with explicit multipart ids (S3) can
  # list them; a failure to abort one is reported against its key.
  defp abort_orphans(%{ctx: %{dry_run: true}} = state), do: state

  defp abort_orphans(state) do
    Enum.reduce(state.orphans, state, fn key, st ->
      path = Worker.join(st.ctx.dest_prefix, key)

      case sweep(st.ctx.dest, path, st.since_ms) do
        {:ok, _aborted} ->
          st

        {:error, %Error{} = e} ->
          e = %Error{e | message: "aborting the upload a node left at going down: " <> e.message}
          %{st | report: %{st.report | failed: [{key, e} | st.report.failed]}}
      end
    end)
  end

  defp sweep(store, path, since_ms) do
    with {:ok, resource} <- Args.store(store) do
      ObjectStoreX.Call.await(
        &ObjectStoreX.Native.multipart_sweep(&1, resource, path, since_ms),
        120_000
      )
    end
  end

  defp delete_extras(%{spill: {path, n}} = state) when n > 0 do
    path
    |> File.stream!([], :line)
    |> Stream.map(&URI.decode(String.trim_trailing(&1, "\n")))
    |> Stream.chunk_every(@delete_batch)
    |> Enum.reduce(state, &delete_batch/2)
  end

  defp delete_extras(state), do: state

  defp delete_batch(keys, %{ctx: %{dry_run: true}} = state) do
    Enum.reduce(keys, state, &count(&2, &1, :deleted, 0, 0, node(), nil))
  end

  defp delete_batch(keys, state) do
    paths = Enum.map(keys, &Worker.join(state.ctx.dest_prefix, &1))
    started = System.monotonic_time()

    case ObjectStoreX.delete_many(state.ctx.dest, paths) do
      {:ok, _deleted, failures} ->
        duration = System.monotonic_time() - started
        failed = Map.new(failures)

        Enum.reduce(keys, state, fn key, st ->
          case Map.fetch(failed, Worker.join(st.ctx.dest_prefix, key)) do
            {:ok, e} -> failed_delete(st, key, e)
            :error -> count(st, key, :deleted, 0, duration, node(), nil)
          end
        end)

      {:error, e} ->
        Enum.reduce(keys, state, &failed_delete(&2, &1, e))
    end
  end

  defp failed_delete(state, key, e) do
    state = count(state, key, :failed, 0, 0, node(), e.reason)
    %{state | report: %{state.report | failed: [{key, e} | state.report.failed]}}
  end
end
