defmodule ObjectStoreX.ProgressTest do
  # `:on_progress` of the natively driven calls (download_file/4, transfer/5, upload_file/4):
  # reports arrive while the work runs, not only at its end. The source is a real HTTP/1.1
  # server on loopback that holds its body at a given offset until the test lets it go, so
  # the moment "part of the bytes have moved" is certain, not a matter of timing.
  use ExUnit.Case, async: true

  alias ObjectStoreX.TestHTTP

  @size 12 * 1_048_576
  @etag ~s("v1")

  # Serves `data` at any path (HEAD, GET, ranged GET). A response that reaches offset
  # `hold_at` of the object sends the bytes before it, tells the test, and waits for `:go`.
  defp holding_server(data, hold_at) do
    test = self()

    {port, server} =
      TestHTTP.serve(fn sock ->
        {:ok, request, _body} = TestHTTP.read_head(sock)
        {method, _path, _version} = request.start
        {first, last} = range(TestHTTP.header(request, "range"), byte_size(data))

        status =
          if first == 0 and last == byte_size(data) - 1, do: "200 OK", else: "206 Partial Content"

        head =
          "HTTP/1.1 #{status}\r\ncontent-length: #{last - first + 1}\r\netag: #{@etag}\r\n" <>
            "last-modified: Sun, 22 Nov 2026 10:00:00 GMT\r\naccept-ranges: bytes\r\n" <>
            "content-range: bytes #{first}-#{last}/#{byte_size(data)}\r\nconnection: close\r\n\r\n"

        cond do
          method == "HEAD" ->
            :gen_tcp.send(sock, head)

          first <= hold_at and hold_at <= last ->
            :gen_tcp.send(sock, [head, binary_part(data, first, hold_at - first)])
            send(test, {:holding, self()})

            receive do
              :go -> :gen_tcp.send(sock, binary_part(data, hold_at, last - hold_at + 1))
            end

          true ->
            :gen_tcp.send(sock, [head, binary_part(data, first, last - first + 1)])
        end
      end)

    on_exit(fn -> Process.exit(server, :kill) end)
    port
  end

  defp range(nil, size), do: {0, size - 1}

  defp range("bytes=" <> spec, size) do
    [a, b] = String.split(spec, "-")
    {String.to_integer(a), if(b == "", do: size - 1, else: String.to_integer(b))}
  end

  defp http_store(port),
    do: ObjectStoreX.new!(:http, url: "http://127.0.0.1:#{port}", allow_http: true)

  # Runs `fun` (given an :on_progress function) in a task; checks that a report of part of the
  # bytes arrives while the source holds, then lets it go and returns the task's result.
  defp assert_reports_midway(data, hold_at, fun) do
    port = holding_server(data, hold_at)
    test = self()
    task = Task.async(fn -> fun.(http_store(port), &send(test, {:progress, &1})) end)

    assert_receive {:holding, server}, 10_000
    assert_receive {:progress, %{bytes: bytes, total: @size}}, 5_000
    assert bytes > 0 and bytes <= hold_at
    send(server, :go)
    result = Task.await(task, 30_000)

    assert_receive {:progress, %{bytes: @size, total: @size}}
    result
  end

  @tag :tmp_dir
  test "download_file reports the bytes written while it runs", %{tmp_dir: dir} do
    data = :crypto.strong_rand_bytes(@size)
    target = Path.join(dir, "copy.bin")

    result =
      assert_reports_midway(data, div(@size, 2), fn store, progress ->
        ObjectStoreX.download_file(store, "obj.bin", target,
          chunk_size: div(@size, 4),
          concurrency: 1,
          on_progress: progress
        )
      end)

    assert {:ok, %ObjectStoreX.Meta{size: @size}} = result
    assert File.read!(target) == data
  end

  test "transfer reports the bytes copied while it runs" do
    data = :crypto.strong_rand_bytes(@size)
    destination = ObjectStoreX.new!(:memory)

    result =
      assert_reports_midway(data, div(@size, 2), fn store, progress ->
        ObjectStoreX.transfer(store, "obj.bin", destination, "copy.bin",
          part_size: 5 * 1_048_576,
          on_progress: progress
        )
      end)

    assert {:ok, %{bytes: @size}} = result
    assert ObjectStoreX.get!(destination, "copy.bin") == data
  end

  @tag :tmp_dir
  test "upload_file reports the end and calls on_complete with the summary", %{tmp_dir: dir} do
    source = Path.join(dir, "source.bin")
    File.write!(source, :crypto.strong_rand_bytes(@size))
    store = ObjectStoreX.new!(:memory)
    test = self()

    assert {:ok, summary} =
             ObjectStoreX.upload_file(store, "up.bin", source,
               part_size: 5 * 1_048_576,
               on_progress: &send(test, {:progress, &1}),
               on_complete: &send(test, {:complete, &1})
             )

    assert_received {:progress, %{bytes: @size, total: @size}}
    assert_received {:complete, ^summary}
    assert summary.bytes == @size
  end

  test "a bad :on_progress is refused, naming the option" do
    store = ObjectStoreX.new!(:memory)

    assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
             ObjectStoreX.download_file(store, "x", "/tmp/x", on_progress: :nope)

    assert message =~ ":on_progress"
  end

  describe "an :on_progress that raises mid-operation" do
    # The callback runs in the caller: it waits until the server holds the request half-way,
    # so the operation is certainly unfinished when it raises. The raise must cancel the native
    # task, leave nothing in the mailbox, and re-raise; the operation must not finish later.
    defp when_held(stop) do
      fn %{bytes: _} ->
        assert_receive {:holding, server}, 10_000
        Process.put(:held_by, server)
        stop.()
      end
    end

    defp assert_clean_mailbox,
      do: assert(Process.info(self(), :messages) == {:messages, []})

    # Lets the held request go, and gives anything still running time to finish.
    defp release do
      send(Process.delete(:held_by), :go)
      refute_receive _, 500
    end

    @tag :tmp_dir
    test "download_file cancels, leaves no message and writes no file", %{tmp_dir: dir} do
      data = :crypto.strong_rand_bytes(@size)
      store = http_store(holding_server(data, div(@size, 2)))
      target = Path.join(dir, "copy.bin")

      assert_raise RuntimeError, "stop download", fn ->
        ObjectStoreX.download_file(store, "obj.bin", target,
          chunk_size: div(@size, 4),
          concurrency: 1,
          on_progress: when_held(fn -> raise "stop download" end)
        )
      end

      assert_clean_mailbox()
      release()
      refute File.exists?(target)
      assert_clean_mailbox()
    end

    test "transfer cancels, leaves no message and writes no object" do
      data = :crypto.strong_rand_bytes(@size)
      source = http_store(holding_server(data, div(@size, 2)))
      destination = ObjectStoreX.new!(:memory)

      # A throw, not a raise: every kind of exit from the callback is handled alike.
      thrown =
        catch_throw(
          ObjectStoreX.transfer(source, "obj.bin", destination, "copy.bin",
            part_size: 5 * 1_048_576,
            on_progress: when_held(fn -> throw(:stop_transfer) end)
          )
        )

      assert thrown == :stop_transfer

      assert_clean_mailbox()
      release()

      assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
               ObjectStoreX.head(destination, "copy.bin")

      assert_clean_mailbox()
    end

    @tag :tmp_dir
    test "upload_file cancels, leaves no message and abandons its PUT", %{tmp_dir: dir} do
      # Smaller than one part: a single PUT, held by the server once its head has arrived.
      size = 4 * 1_048_576
      source = Path.join(dir, "source.bin")
      File.write!(source, :crypto.strong_rand_bytes(size))
      store = http_store(holding_put_server())

      assert_raise RuntimeError, "stop upload", fn ->
        ObjectStoreX.upload_file(store, "up.bin", source,
          part_size: 8 * 1_048_576,
          on_progress: when_held(fn -> raise "stop upload" end)
        )
      end

      assert_clean_mailbox()
      send(Process.delete(:held_by), :go)
      # A running upload would wait for the answer; a cancelled one has hung up.
      assert_receive {:put, :abandoned}, 5_000
      refute_receive _, 500
    end
  end

  # Accepts one PUT: reads its head, tells the test, waits for `:go`, reads the body, then tells
  # the test whether the client still waits for an answer (which it then gets: 201) or has
  # hung up.
  defp holding_put_server do
    test = self()

    {port, server} =
      TestHTTP.serve(fn sock ->
        {:ok, request, body} = TestHTTP.read_head(sock)
        length = String.to_integer(TestHTTP.header(request, "content-length") || "0")
        send(test, {:holding, self()})

        receive do
          :go -> :ok
        end

        with :ok <- read_body(sock, length - byte_size(body)),
             {:error, :timeout} <- :gen_tcp.recv(sock, 0, 1_000) do
          :gen_tcp.send(sock, "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
          send(test, {:put, :answered})
        else
          _ -> send(test, {:put, :abandoned})
        end
      end)

    on_exit(fn -> Process.exit(server, :kill) end)
    port
  end

  defp read_body(_sock, left) when left <= 0, do: :ok

  defp read_body(sock, left) do
    case :gen_tcp.recv(sock, 0, 5_000) do
      {:ok, bytes} -> read_body(sock, left - byte_size(bytes))
      {:error, _} -> :closed
    end
  end
end
