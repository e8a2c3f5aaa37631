defmodule ObjectStoreX.HostileServerTest do
  # Servers that lie: about an object's size, about honouring If-Match, about how much body
  # they send. Real HTTP/1.1 servers on loopback; the library must neither crash the VM nor
  # hand back bytes of two versions as one.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers
  alias ObjectStoreX.{Error, TestHTTP}

  @modified "Sun, 22 Nov 2026 10:00:00 GMT"

  # Serves version 1 of an object to the first `v1_requests` requests and version 2 (other
  # bytes, other ETag) afterwards, ignoring If-Match, as a careless server or cache does.
  # Ranges are honoured. With `cut`, the first response stops half-way and closes.
  defp replacing_server(v1, v2, v1_requests, opts \\ []) do
    counter = :counters.new(1, [])

    {port, server} =
      TestHTTP.serve(fn sock ->
        :counters.add(counter, 1, 1)
        n = :counters.get(counter, 1)
        {data, etag} = if n <= v1_requests, do: {v1, ~s("v1")}, else: {v2, ~s("v2")}
        etag = if opts[:etag] == false, do: nil, else: etag
        serve_range(sock, data, etag, opts[:cut] && n == 1)
      end)

    on_exit(fn -> Process.exit(server, :kill) end)
    if opts[:count], do: {port, counter}, else: port
  end

  defp serve_range(sock, data, etag, cut?) do
    {:ok, request, _} = TestHTTP.read_head(sock)
    size = byte_size(data)

    {status, range, body} =
      case TestHTTP.header(request, "range") do
        nil ->
          {"200 OK", "", data}

        "bytes=" <> spec ->
          [a, b] = String.split(spec, "-")
          a = String.to_integer(a)
          b = if b == "", do: size - 1, else: min(String.to_integer(b), size - 1)

          {"206 Partial Content", "content-range: bytes #{a}-#{b}/#{size}\r\n",
           binary_part(data, a, b - a + 1)}
      end

    body = if elem(request.start, 0) == "HEAD", do: "", else: body
    etag = if etag, do: "etag: #{etag}\r\n", else: ""

    head =
      "HTTP/1.1 #{status}\r\ncontent-length: #{if body == "", do: size, else: byte_size(body)}\r\n" <>
        "#{etag}last-modified: #{@modified}\r\naccept-ranges: bytes\r\n#{range}connection: close\r\n\r\n"

    sent = if cut?, do: binary_part(body, 0, div(byte_size(body), 2)), else: body
    :gen_tcp.send(sock, [head, sent])
  end

  describe "a server announcing a huge Content-Length" do
    for {name, opts} <- [{"get/3", "[]"}, {"get/3 with {:offset, n}", "[range: {:offset, 10}]"}] do
      @get_opts opts
      test "#{name} returns an error and the VM survives" do
        # In a child VM: before the fix the announced size was allocated up front and the
        # allocation failure aborted the VM (exit 134).
        code = """
        {port, _} =
          ObjectStoreX.TestHTTP.serve(fn sock ->
            {:ok, _req, _} = ObjectStoreX.TestHTTP.read_head(sock)
            :gen_tcp.send(sock, "HTTP/1.1 200 OK\\r\\ncontent-length: 1099511627776\\r\\n" <>
              "etag: \\"v1\\"\\r\\nlast-modified: #{@modified}\\r\\n\\r\\n" <> :binary.copy("x", 65536))
            Process.sleep(50)
            :gen_tcp.send(sock, :binary.copy("y", 65536))
            Process.sleep(50)
          end)
        store = ObjectStoreX.new!(:http, url: "http://127.0.0.1:\#{port}", allow_http: true,
          retry: [max_retries: 0])
        case ObjectStoreX.get(store, "obj", #{@get_opts}) do
          {:error, %ObjectStoreX.Error{reason: reason}} -> IO.puts("RESULT error \#{reason}")
          other -> IO.puts("RESULT \#{inspect(other, limit: 3)}")
        end
        """

        {output, status} = in_child_vm(code)
        assert status == 0, "the child VM exited with #{status}:\n#{output}"
        assert output =~ "RESULT error"
      end
    end
  end

  describe "a server that ignores If-Match while the object is replaced" do
    setup do
      v1 = :crypto.strong_rand_bytes(1_000_000)
      v2 = :crypto.strong_rand_bytes(1_000_000)
      %{v1: v1, v2: v2}
    end

    test "parallel ranged downloads fail instead of mixing versions", %{v1: v1, v2: v2} do
      # The HEAD and the first range see version 1; later ranges see version 2.
      port = replacing_server(v1, v2, 2)

      error =
        catch_error(
          ObjectStoreX.Stream.download(loopback_http_store!(port), "obj",
            chunk_size: 100_000,
            concurrency: 2
          )
          |> Enum.to_list()
        )

      assert %Error{reason: :precondition_failed} = error
    end

    @tag :tmp_dir
    test "download_file fails, leaves no file and no temporary file", %{
      v1: v1,
      v2: v2,
      tmp_dir: dir
    } do
      port = replacing_server(v1, v2, 2)
      target = Path.join(dir, "out.bin")

      assert {:error, %Error{reason: :precondition_failed}} =
               ObjectStoreX.download_file(loopback_http_store!(port), "obj", target,
                 chunk_size: 100_000,
                 concurrency: 2
               )

      assert File.ls!(dir) == []
    end

    test "a resumed body is checked against the ETag of the first answer", %{v1: v1, v2: v2} do
      # The first answer (version 1) is cut half-way; the resumption gets version 2.
      port = replacing_server(v1, v2, 1, cut: true)

      error =
        catch_error(
          ObjectStoreX.Stream.download(loopback_http_store!(port), "obj")
          |> Enum.to_list()
        )

      assert %Error{reason: :precondition_failed} = error
    end

    test "a body without ETag or version that ends early is not resumed", %{v1: v1} do
      {port, requests} = replacing_server(v1, v1, 1_000, cut: true, etag: false, count: true)

      error =
        catch_error(
          ObjectStoreX.Stream.download(loopback_http_store!(port), "obj")
          |> Enum.to_list()
        )

      assert %Error{} = error
      # Resuming would have asked again, for bytes that could belong to another version.
      assert :counters.get(requests, 1) == 1
    end

    test "get_ranges fails when its answers name two versions", %{v1: v1, v2: v2} do
      port = replacing_server(v1, v2, 1)

      assert {:error, %Error{reason: :precondition_failed}} =
               ObjectStoreX.get_ranges(loopback_http_store!(port), "obj", [
                 {0, 9},
                 {500_000, 500_009}
               ])
    end
  end

  describe "an S3 server whose bulk delete answers for a key it was not asked about" do
    test "delete_many reports each path of the batch failed, as data" do
      # object_store panics reading such an answer; before, the whole call was :internal.
      {port, server} =
        TestHTTP.serve(fn sock ->
          {:ok, request, rest} = TestHTTP.read_head(sock)
          length = String.to_integer(TestHTTP.header(request, "content-length") || "0")

          {:ok, _body} =
            if length > byte_size(rest),
              do: :gen_tcp.recv(sock, length - byte_size(rest)),
              else: {:ok, rest}

          body =
            ~s(<?xml version="1.0" encoding="UTF-8"?><DeleteResult) <>
              ~s( xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Key>not-asked</Key>) <>
              "<Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>"

          :gen_tcp.send(
            sock,
            "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: " <>
              "#{byte_size(body)}\r\nconnection: close\r\n\r\n" <> body
          )
        end)

      on_exit(fn -> Process.exit(server, :kill) end)

      store =
        ObjectStoreX.new!(
          :s3,
          Keyword.put(closed_port_opts(:s3), :endpoint, "http://127.0.0.1:#{port}")
        )

      assert {:ok, 0, failed} = ObjectStoreX.delete_many(store, ["a", "b/c"])
      assert Enum.map(failed, &elem(&1, 0)) == ["a", "b/c"]

      for {_path, error} <- failed do
        assert %Error{reason: :generic, message: message} = error
        assert message =~ "bulk delete was malformed"
      end
    end
  end
end
