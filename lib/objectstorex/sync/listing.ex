defmodule ObjectStoreX.Sync.Listing do
  @moduledoc false
  # Key-ordered listings and their merge, for ObjectStoreX.Sync.
  #
  # S3, GCS, Azure and memory list in key order (UTF-8 byte order), so their streaming listing
  # is used as it comes: one page in memory. The local filesystem lists in directory order, and
  # HTTP/WebDAV servers promise nothing, so those are walked depth first, each directory's
  # entries sorted, the next few directories listed concurrently ahead of the walk: memory holds
  # the unvisited entries of the directories on the current path and those listed ahead (not
  # the tree's). Every listing is checked to rise
  # strictly; one that does not raises instead of letting a merge draw wrong conclusions (such
  # as an object missing from the destination that is only late in its listing).
  #
  # `merge_ahead/2` runs each listing in a process of its own, a bounded number of entries
  # ahead of the merge, so that the source and destination are listed at the same time.

  alias ObjectStoreX.{Error, Meta, Store}

  @ordered [:s3, :gcs, :azure, :memory]

  # Entries a listing process hands over at a time: one page of an S3 listing.
  @chunk 1_000
  # Directories a :tree walk lists ahead of the one it is in.
  @tree_ahead 8

  @doc "Whether `backend` lists in key order natively."
  @spec ordered?(Store.backend()) :: boolean()
  def ordered?(backend), do: backend in @ordered

  @doc """
  The objects under `prefix` (nil: the whole store) as lists of at most #{@chunk}
  `{relative_key, %Meta{}}` (as a page or a directory comes), in strictly rising key order,
  lazily: what `merge_ahead/2` takes, without a stream step per entry. `mode` is `:flat` (a
  key-ordered store's own paginated listing) or `:tree` (walked by "/" directory, as unordered
  stores always are). Raises `ObjectStoreX.Error` when listing fails.
  """
  @spec chunks(Store.t(), String.t() | nil, atom(), :flat | :tree) :: Enumerable.t()
  def chunks(store, prefix, side, mode \\ :flat) do
    strip = if prefix, do: prefix <> "/", else: ""

    store
    |> raw(prefix, mode)
    |> Stream.transform(nil, fn metas, previous ->
      {entries, last} = relative(metas, strip, byte_size(strip), side, previous, [])
      {[entries], last}
    end)
  end

  defp raw(%Store{backend: backend} = store, prefix, :flat) when backend in @ordered do
    store
    |> ObjectStoreX.Stream.list_stream(prefix: prefix, timeout: 120_000)
    |> Stream.chunk_every(@chunk)
  end

  defp raw(store, prefix, _mode), do: walk(store, prefix)

  # Keys relative to the listed prefix, each checked to rise strictly.
  defp relative([%Meta{location: location} = meta | rest], strip, n, side, previous, acc) do
    key =
      case location do
        <<head::binary-size(n), key::binary>> when head == strip -> key
        _ -> location
      end

    if previous != nil and key <= previous, do: not_rising!(side, key, previous)
    relative(rest, strip, n, side, key, [{key, meta} | acc])
  end

  defp relative([], _strip, _n, _side, previous, acc), do: {:lists.reverse(acc), previous}

  defp not_rising!(side, key, previous) do
    raise Error,
      reason: :generic,
      message:
        "the #{side} store listed #{inspect(key)} after #{inspect(previous)}: not in key " <>
          "order, so it cannot be compared with the other side"
  end

  # Depth first, each directory's entries sorted by the key they stand for: an object by its
  # path, a directory by its path and "/" (every key below it starts so). A sibling that sorts
  # before "dir/" sorts before every key below it, one after it after them all, so this visits
  # keys in byte order.
  #
  # `ahead` holds the directories not yet visited, in the order they will be; the next 8 of
  # them (@tree_ahead) are listed concurrently while the walk emits what comes before them, each
  # listing held until the walk reaches its directory. A directory found since goes in front of
  # the ones already listed, which stay held: at most 8 listings are started at each level of
  # the current path.
  defp walk(store, prefix) do
    Stream.resource(
      fn -> %{pending: [{:dir, prefix}], ahead: [prefix], listing: %{}} end,
      fn
        %{pending: []} = st ->
          {:halt, st}

        %{pending: [{:object, _} | _] = pending} = st ->
          {metas, rest} = objects(pending, @chunk, [])
          {[metas], %{st | pending: rest}}

        %{pending: [{:dir, dir} | rest], ahead: [dir | ahead]} = st ->
          # Its siblings are listed while this one is awaited.
          st = list_ahead(st, store)
          {task, listing} = Map.pop!(st.listing, dir)
          result = await_listing(task)

          entries =
            Enum.map(result.objects, &{&1.location, {:object, &1}}) ++
              Enum.map(result.common_prefixes, &{&1 <> "/", {:dir, &1}})

          sorted = entries |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))
          dirs = for {:dir, d} <- sorted, do: d
          st = %{st | pending: sorted ++ rest, ahead: dirs ++ ahead, listing: listing}
          {[], list_ahead(st, store)}
      end,
      fn st -> Enum.each(Map.values(st.listing), &Task.shutdown(&1, :brutal_kill)) end
    )
  end

  # The objects at the head of `pending`, up to `n` of them, as one chunk.
  defp objects([{:object, meta} | rest], n, acc) when n > 0,
    do: objects(rest, n - 1, [meta | acc])

  defp objects(rest, _n, acc), do: {:lists.reverse(acc), rest}

  # Starts the listing of each of the next directories not yet started.
  defp list_ahead(st, store) do
    st.ahead
    |> Enum.take(@tree_ahead)
    |> Enum.reduce(st, fn dir, st ->
      if Map.has_key?(st.listing, dir) do
        st
      else
        task =
          Task.async(fn ->
            ObjectStoreX.list_with_delimiter(store, prefix: dir, timeout: 120_000)
          end)

        %{st | listing: Map.put(st.listing, dir, task)}
      end
    end)
  end

  defp await_listing(task) do
    case Task.await(task, :infinity) do
      {:ok, result} -> result
      {:error, %Error{} = e} -> raise e
    end
  end

  # `chunks` enumerates lists of entries, each handed over as it is.
  defp start_ahead(chunks) do
    consumer = self()
    ref = make_ref()
    {pid, monitor} = :erlang.spawn_opt(fn -> lister(consumer, ref, chunks) end, [:link, :monitor])
    %{pid: pid, ref: ref, monitor: monitor, done: false}
  end

  # The next chunk of a listing started by start_ahead/1, or its end; raises what it raised.
  defp take_chunk(%{pid: pid, ref: ref, monitor: monitor} = st, side) do
    receive do
      {^ref, :chunk, chunk} ->
        # Taking a chunk lets the listing send the next one, filled meanwhile.
        send(pid, {ref, :more})
        {:chunk, chunk, st}

      {^ref, :done} ->
        {:done, %{st | done: true}}

      {^ref, {:error, %Error{} = e}} ->
        raise e

      {^ref, {:raised, kind, reason, stack}} ->
        :erlang.raise(kind, reason, stack)

      {:DOWN, ^monitor, :process, ^pid, reason} ->
        raise Error,
          reason: :internal,
          message: "the #{side} listing stopped before its end: #{inspect(reason, limit: 5)}"
    end
  end

  # The caller is done with the listing, whether it reached its end or not: the process goes
  # (cancelling its native listing) and whatever it sent is dropped. Called again for the same
  # listing (a merge closes a side whose listing already raised), it returns at once: each call
  # waits on a monitor of its own.
  defp stop_ahead(%{pid: pid, ref: ref, monitor: monitor}) do
    Process.unlink(pid)
    gone = Process.monitor(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^gone, :process, ^pid, _} -> :ok
    end

    Process.demonitor(monitor, [:flush])
    flush(ref)
  end

  defp flush(ref) do
    receive do
      {^ref, _} -> flush(ref)
      {^ref, _, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp lister(consumer, ref, chunks) do
    result =
      try do
        Enum.reduce(chunks, 1, fn
          [], credit ->
            credit

          chunk, credit ->
            credit = if credit == 0, do: await_more(ref), else: credit
            send(consumer, {ref, :chunk, chunk})
            credit - 1
        end)

        :done
      rescue
        e in Error -> {:error, e}
      catch
        kind, reason -> {:raised, kind, reason, __STACKTRACE__}
      end

    send(consumer, {ref, result})
    # Ending unlinked: a consumer that traps exits gets no exit message of a listing that ended.
    Process.unlink(consumer)
  end

  defp await_more(ref) do
    receive do
      {^ref, :more} -> 1
    end
  end

  @doc """
  Merges two key-ordered listings (of `chunks/4`) into `{:both, key, src, dst}`,
  `{:source, key, src}` and `{:dest, key, dst}`, in key order, lazily, handed out as lists (a
  chunk's worth at most); the merge itself is plain recursion over the chunks, with no
  per-entry stream step.

  Each listing is enumerated in a process of its own, linked to and monitored by the caller,
  so that both sides are listed at the same time, and ahead of the merge by a bounded amount:
  at most three chunks of a side exist at once, the one the merge takes from, one waiting in
  its mailbox and one being filled. An error raised by either listing is thrown as
  `{:listing_failed, side, error}`; anything else it raises, throws or exits with is raised
  again in the caller; a listing process that goes down without finishing is an error, never
  the listing's end. Halting the stream (or a failure) ends both listing processes and leaves
  no message of theirs in the caller's mailbox.
  """
  @spec merge_ahead(Enumerable.t(), Enumerable.t()) :: Enumerable.t()
  def merge_ahead(source, dest) do
    Stream.resource(
      fn ->
        {side(start_ahead(source), :source, "source"),
         side(start_ahead(dest), :dest, "destination")}
      end,
      &merge_next/1,
      fn {a, b} ->
        stop_ahead(a.ahead)
        stop_ahead(b.ahead)
      end
    )
  end

  defp side(ahead, side, name), do: %{ahead: ahead, side: side, name: name, buf: []}

  defp merge_next({a, b}) do
    a = fill(a)
    b = fill(b)

    case {a.buf, b.buf} do
      {[], []} ->
        {:halt, {a, b}}

      {as, []} ->
        {[for({k, s} <- as, do: {:source, k, s})], {%{a | buf: []}, b}}

      {[], bs} ->
        {[for({k, d} <- bs, do: {:dest, k, d})], {a, %{b | buf: []}}}

      {as, bs} ->
        # Up to the end of one side's chunk: the rest of the other waits for its next one.
        {merged, as, bs} = merge_lists(as, bs, [])
        {[merged], {%{a | buf: as}, %{b | buf: bs}}}
    end
  end

  defp merge_lists([{ka, s} | as] = al, [{kb, d} | bs] = bl, acc) do
    cond do
      ka == kb -> merge_lists(as, bs, [{:both, ka, s, d} | acc])
      ka < kb -> merge_lists(as, bl, [{:source, ka, s} | acc])
      true -> merge_lists(al, bs, [{:dest, kb, d} | acc])
    end
  end

  defp merge_lists(as, bs, acc), do: {:lists.reverse(acc), as, bs}

  # A side whose chunk is used up takes its next one (an empty buffer then means its end).
  defp fill(%{buf: [], ahead: %{done: false} = ahead} = side) do
    case take_chunk(ahead, side.name) do
      {:chunk, chunk, ahead} -> %{side | buf: chunk, ahead: ahead}
      {:done, ahead} -> %{side | ahead: ahead}
    end
  rescue
    e in Error -> throw({:listing_failed, side.side, e})
  end

  defp fill(side), do: side
end
