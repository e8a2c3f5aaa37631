# One benchmark measurement through ObjectStoreX, in a fresh VM (the bench driver runs one
# process per measurement so that peak RSS belongs to one job):
#
#   MIX_ENV=prod mix run bench/osx.exs WORKLOAD STORE ARGS...
#
#   upload        SIZE_MIB PART_MIB CONCURRENCY   Stream.upload of a repeated 1 MiB block
#   upload_fresh  SIZE_MIB PART_MIB CONCURRENCY   the same with fresh data for every chunk, so
#                                                 that parts really occupy memory (RSS check)
#   download      SIZE_MIB CHUNK_MIB              Stream.download of bench/big.bin
#   slow_download SIZE_MIB CHUNK_MIB SLEEP_MS     the same, the consumer sleeping per chunk
#   put_many      COUNT SIZE_BYTES CONCURRENCY    Stream.put_many/3, unordered
#   put_each      COUNT SIZE_BYTES CONCURRENCY    put/3 under Task.async_stream
#   get_many      COUNT SIZE_BYTES CONCURRENCY    Stream.get_many/3, unordered
#   get_each      COUNT SIZE_BYTES CONCURRENCY    get/3 under Task.async_stream
#   list          COUNT                           Stream.list_stream of bench/list/
#
# STORE is `memory`, `local:DIR` or `s3:ENDPOINT:BUCKET` (credentials from AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY, default "test"). Prints `BASE_RSS kib`, `BOUND bytes` (the
# documented memory bound of a streaming job), `CPU micros` (user + system time of the whole VM,
# every thread, during the timed part) and `RESULT units micros`. With `memory`, reads first
# write their own data, untimed; elsewhere the driver prepares them. The timed part begins no
# earlier than BENCH_START_AT, if set (see bench/bench.py, BENCH_SETTLE).
Code.require_file("store_spec.exs", __DIR__)
Code.require_file("proc.exs", __DIR__)

defmodule Bench.OSX do
  @mib 1_048_576
  @big "bench/big.bin"

  def main([workload, spec | args]) do
    store = Bench.StoreSpec.open!(spec)
    args = Enum.map(args, &String.to_integer/1)
    {units, micros, bound, cpu} = run(workload, store, args)
    if bound, do: IO.puts("BOUND #{bound}")
    IO.puts("CPU #{cpu}")
    IO.puts("RESULT #{units} #{micros}")
  end

  defp run("upload", store, [size, part, inflight]) do
    block = block()
    source = Stream.repeatedly(fn -> block end) |> Stream.take(size)
    upload(store, source, size, part, inflight)
  end

  defp run("upload_fresh", store, [size, part, inflight]) do
    source = Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@mib) end) |> Stream.take(size)
    upload(store, source, size, part, inflight)
  end

  defp run("download", store, [size, chunk]), do: download(store, size, chunk, fn _ -> :ok end)

  defp run("slow_download", store, [size, chunk, sleep]),
    do: download(store, size, chunk, fn _ -> Process.sleep(sleep) end)

  defp run("put_many", store, [count, size, inflight]) do
    body = binary_part(block(), 0, size)

    timed(
      fn ->
        Stream.map(0..(count - 1), &{many_path(size, &1), body})
        |> then(
          &ObjectStoreX.Stream.put_many(store, &1, max_concurrency: inflight, ordered: false)
        )
        |> Enum.reduce(0, fn {_path, {:ok, _result}}, n -> n + 1 end)
      end,
      nil
    )
  end

  defp run("put_each", store, [count, size, inflight]) do
    body = binary_part(block(), 0, size)
    timed(fn -> put_many(store, count, size, body, inflight) end, nil)
  end

  defp run("get_many", store, [count, size, inflight]) do
    if store.backend == :memory, do: put_many(store, count, size, block(), inflight)

    timed(
      fn ->
        paths = Stream.map(0..(count - 1), &many_path(size, &1))

        ObjectStoreX.Stream.get_many(store, paths, max_concurrency: inflight, ordered: false)
        |> Enum.reduce(0, fn {_path, {:ok, body, _meta}}, n ->
          ^size = byte_size(body)
          n + 1
        end)
      end,
      nil
    )
  end

  defp run("get_each", store, [count, size, inflight]) do
    if store.backend == :memory, do: put_many(store, count, size, block(), inflight)

    timed(
      fn ->
        0..(count - 1)
        |> Task.async_stream(
          fn i ->
            {:ok, body, _meta} = ObjectStoreX.get(store, many_path(size, i))
            ^size = byte_size(body)
          end,
          max_concurrency: inflight,
          ordered: false
        )
        |> Enum.count()
      end,
      nil
    )
  end

  defp run("list", store, [count]) do
    if store.backend == :memory, do: fill_list(store, count)

    timed(
      fn ->
        seen = ObjectStoreX.Stream.list_stream(store, prefix: "bench/list/") |> Enum.count()
        if seen != count, do: raise("listed #{seen} entries, expected #{count}")
        seen
      end,
      nil
    )
  end

  defp upload(store, source, size, part, inflight) do
    timed(
      fn ->
        :ok =
          ObjectStoreX.Stream.upload(source, store, @big,
            part_size: part * @mib,
            max_concurrency: inflight
          )

        size * @mib
      end,
      (inflight + 1) * part * @mib + @mib
    )
  end

  defp download(store, size, chunk, each) do
    # One block repeated, as the peers write theirs: fresh data would hold a second GiB until
    # the upload completes, and that untimed peak would count as the download's.
    if store.backend == :memory do
      block = block()

      :ok =
        Stream.repeatedly(fn -> block end)
        |> Stream.take(size)
        |> ObjectStoreX.Stream.upload(store, @big)
    end

    timed(
      fn ->
        ObjectStoreX.Stream.download(store, @big, chunk_size: chunk * @mib)
        |> Enum.reduce(0, fn data, acc ->
          each.(data)
          acc + byte_size(data)
        end)
      end,
      Bench.StoreSpec.download_bound(store, chunk * @mib)
    )
  end

  defp put_many(store, count, size, body, inflight) do
    body = binary_part(body, 0, size)

    0..(count - 1)
    |> Task.async_stream(fn i -> :ok = ObjectStoreX.put(store, many_path(size, i), body) end,
      max_concurrency: inflight,
      ordered: false
    )
    |> Enum.count()
  end

  # Empty objects, as the raw program writes them. Untimed, so as fast as it goes: one task
  # per scheduler, each putting a thousand in turn (a task per object is slower, and leaves
  # garbage that would count in the peak RSS of the listing).
  defp fill_list(store, count) do
    0..(count - 1)
    |> Stream.chunk_every(1000)
    |> Task.async_stream(
      fn indices ->
        Enum.each(indices, &(:ok = ObjectStoreX.put(store, "bench/list/" <> pad(&1), "")))
      end,
      max_concurrency: System.schedulers_online(),
      ordered: false
    )
    |> Stream.run()
  end

  defp timed(fun, bound) do
    :erlang.garbage_collect()
    IO.puts("BASE_RSS #{Bench.Proc.rss_kib()}")
    wait_for_start()
    cpu = Bench.Proc.cpu_micros()
    {micros, units} = :timer.tc(fun)
    {units, micros, bound, Bench.Proc.cpu_micros() - cpu}
  end

  # The driver's BENCH_START_AT (seconds since the epoch): every contender's timed part starts
  # at that moment after the driver's sync, whatever its start-up took. `LATE micros` if it
  # had passed.
  defp wait_for_start do
    with at when is_binary(at) <- System.get_env("BENCH_START_AT"),
         {at, ""} <- Float.parse(at) do
      wait = round(at * 1_000_000) - System.os_time(:microsecond)

      if wait > 0,
        do: Process.sleep(div(wait + 999, 1000)),
        else: IO.puts("LATE #{-wait}")
    end
  end

  # Generated once: producing data is not what is measured.
  defp block, do: :crypto.strong_rand_bytes(@mib)

  defp many_path(size, i), do: "bench/many-#{size}/" <> pad(i)
  defp pad(i), do: i |> Integer.to_string() |> String.pad_leading(6, "0")
end

Bench.OSX.main(System.argv())
